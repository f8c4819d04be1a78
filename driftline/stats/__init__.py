"""Pure statistics: profiles, distances, tests and verdicts (numpy/scipy only; no I/O, no Prefect)."""
