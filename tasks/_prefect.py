"""Shared Prefect task options."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from prefect.cache_policies import NO_CACHE

from driftline.core.errors import DatabaseUnavailableError, DriftlineError


def is_transient(_task: Any, _run: Any, state: Any) -> bool:
    """Retry on a dropped connection or serialization failure, never on our own errors."""
    try:
        state.result()
    except DatabaseUnavailableError:
        return True  # the database outlived the window's own wait: one more try later
    except DriftlineError:
        return False
    except (sa.exc.OperationalError, sa.exc.InterfaceError):
        return True
    except sa.exc.DBAPIError as exc:
        return bool(exc.connection_invalidated)
    except Exception:
        return False
    return False


#: Every task runs uncached: tasks take engines and DataFrames (caching by inputs would hash them), and a
#: window's work must run again on a rerun anyway (idempotency comes from the upsert, not from a cache).
#: ``NO_RETRIES``: a failure is final (computations, and I/O whose caller owns the retry, e.g. the outbox).
NO_RETRIES = {"cache_policy": NO_CACHE}
#: ``RETRY_TRANSIENT``: two more tries, 1 s then 5 s later, on a dropped connection (``is_transient``).
RETRY_TRANSIENT = NO_RETRIES | {"retries": 2, "retry_delay_seconds": [1, 5], "retry_condition_fn": is_transient}
