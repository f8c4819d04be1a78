"""The project's exception hierarchy: every error Driftline raises on purpose derives from one root."""


class DriftlineError(Exception):
    """Root of all Driftline errors; the CLI prints these as one line and exits non-zero."""


class ConfigError(DriftlineError):
    """monitors.yaml is missing, malformed or names something invalid."""


class DatabaseUnavailableError(DriftlineError):
    """The database could not be reached."""


class SchemaMismatchError(DriftlineError):
    """A configured table or column does not exist in the database."""


class ReferenceDataError(DriftlineError):
    """The reference range is empty or cannot be profiled."""
