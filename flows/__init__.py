"""Prefect flows: they only sequence and branch; the work is in ``driftline.tasks``."""
