"""Runtime settings from the environment (prefix ``DRIFTLINE_``).

Built on demand with :func:`load_settings`; never instantiated at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment settings. ``database_url`` overrides the one in monitors.yaml."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLINE_", extra="ignore")

    database_url: SecretStr | None = None
    results_url: SecretStr | None = None
    config: Path | None = None
    home: Path = Path.home() / ".driftline"


def load_settings() -> Settings:
    return Settings()
