"""The Evidently monitor with Evidently installed, run through the hourly flow against PostgreSQL.

Needs the ``evidently`` extra, which pins pandas < 3 (Evidently 0.7 does not import under pandas 3),
so it cannot share the main environment. Its file name does not start with ``test_`` so the default
``pytest`` run does not collect it; ``.ci/run`` builds ``.venv-evidently`` with
``pip install -e '.[dev,evidently]'`` and runs ``python -m pytest tests/extras/evidently_drift.py`` there.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.results import load_results
from driftline.storage.runs import load_runs
from tests.conftest import DAY, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")

PATH = "driftline.tasks.evidently_drift:EvidentlyDrift"


def _evidently_rows(store: sa.Engine, window_start: Any) -> dict[str | None, Any]:
    rows = [
        r for r in load_results(store, "loan") if r.metric.startswith("evidently:") and r.window_start == window_start
    ]
    by_feature = {r.feature: r for r in rows}
    assert len(by_feature) == len(rows), "one Evidently row per feature"
    return by_feature


def test_evidently_flags_the_seeded_drift_and_not_the_unchanged_features(
    store: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import evidently

    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monitors = [{"name": "evidently", "path": PATH}]
    config = write_config(
        tmp_path / "m.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )

    # 14:00-15:00: income shifted by +3 standard deviations; age and region as in the reference.
    end = DAY + timedelta(hours=15)
    assert monitor_model("loan", end, str(config))["rows"] == 200
    rows = _evidently_rows(store, end - timedelta(hours=1))
    assert set(rows) == {"income", "age", "region", None}
    income, age, region, share = rows["income"], rows["age"], rows["region"], rows[None]
    # A reference of more than 1,000 rows: Evidently picks its normed Wasserstein distance for
    # numbers and the Jensen-Shannon distance for categories, both drifting at 0.1.
    assert income.kind == Kind.DATA_DRIFT and income.metric == "evidently:wasserstein"
    assert income.status == Status.ALERT and income.value > 2 and income.threshold == pytest.approx(0.1)
    assert region.metric == "evidently:jensenshannon" and region.status == Status.OK and region.value < 0.1
    # Unchanged age on 200 rows: Evidently's default (Wasserstein >= 0.1, no significance test) is
    # noisy at this size; its verdict is passed through as it is (here 0.15, so an alert).
    assert age.metric == "evidently:wasserstein" and age.value > 0
    assert age.status == (Status.ALERT if age.value >= 0.1 else Status.OK)
    assert share.metric == "evidently:drifted_columns_share" and share.threshold == 0.5
    assert share.value == pytest.approx(sum(r.status == Status.ALERT for r in (income, age, region)) / 3)
    assert income.details["method"] == "Wasserstein distance (normed)"
    assert income.details["library"] == f"evidently {evidently.__version__}"
    assert income.details["window_rows"] == 200 and income.details["reference_rows"] == 48 * 200

    # Parameters reach Evidently: KS p-values for numbers, PSI for categories, a lower drift share.
    params = {"num_method": "ks", "cat_method": "psi", "cat_threshold": 0.2, "drift_share": 0.3}
    config = write_config(
        tmp_path / "m.yaml",
        [model_entry("loan", loan_log["table"], monitors=[{"name": "evidently", "path": PATH, "params": params}])],
        database_url,
    )
    monitor_model("loan", end, str(config))
    rows = _evidently_rows(store, end - timedelta(hours=1))
    income, age, region, share = rows["income"], rows["age"], rows["region"], rows[None]
    assert (income.metric, income.status, income.threshold) == ("evidently:ks", Status.ALERT, 0.05)
    assert income.value < 1e-10
    assert (age.metric, age.status) == ("evidently:ks", Status.OK) and age.value > 0.05
    assert (region.metric, region.status, region.threshold) == ("evidently:psi", Status.OK, 0.2) and region.value < 0.2
    assert (share.value, share.threshold, share.status) == (pytest.approx(1 / 3), 0.3, Status.ALERT)
    assert share.details["drifted_columns"] == 1
    assert {run["status"] for run in load_runs(store, "loan")} == {"succeeded"}
