"""Prefect tasks over the results store (the SQL itself is in ``driftline.storage``: results, runs, profiles)."""

from __future__ import annotations

from prefect import task

from driftline.storage.profiles import store_window_profile
from driftline.storage.results import save_window
from driftline.storage.runs import claim_run
from driftline.tasks._prefect import RETRY_TRANSIENT

claim_run_task = task(claim_run, name="claim-window", **RETRY_TRANSIENT)
save_window_task = task(save_window, name="persist-window", **RETRY_TRANSIENT)
store_window_profile_task = task(store_window_profile, name="store-window-profile", **RETRY_TRANSIENT)
