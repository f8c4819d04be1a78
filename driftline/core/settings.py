"""Runtime settings from the environment (prefix ``DRIFTLINE_``).

Built on demand with :func:`load_settings`; never instantiated at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment settings. ``database_url`` overrides the one in monitors.yaml."""

    # env_ignore_empty: DRIFTLINE_REPORTS_DIR= (set but empty) means unset, not the current directory.
    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", extra="ignore", env_ignore_empty=True)

    database_url: SecretStr | None = None
    results_url: SecretStr | None = None
    config: Path | None = None
    home: Path = Path.home() / ".driftline"
    #: When set, every hourly run rewrites the model's report (last 7 days) here and links it from
    #: its Prefect artifact; ``reports_url`` is where that folder is published (else a file:// link).
    reports_dir: Path | None = None
    reports_url: str | None = None
    #: How long a window waits for an unreachable database (backing off) before it fails: a restart or a
    #: short outage at the start of a window is ridden out instead of failing the hour.
    db_wait_s: float = 60.0
    #: A running window renews its lease in the run log every third of this; a `running` row whose lease
    #: has passed (its process was killed, or lost the database) is marked failed by the next claim.
    run_lease_s: float = 300.0


def load_settings() -> Settings:
    return Settings()
