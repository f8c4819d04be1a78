"""Deployments: schedules and how Driftline's flows run on a Prefect server."""
