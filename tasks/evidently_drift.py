"""Evidently's data drift inside Driftline's schedule and store (an optional extra).

Runs Evidently's ``DataDriftPreset`` on the window's rows against a sample of reference rows and
maps its per-column verdicts to Driftline results: one ``data_drift`` row per feature (metric
``evidently:<stattest>``, e.g. ``evidently:wasserstein``; value and threshold as
Evidently reports them; ``alert`` where Evidently detects drift, else ``ok``), plus one row for the
share of drifted columns (``evidently:drifted_columns_share``, ``alert`` at or above
``drift_share``). Evidently picks its test per column by type and size unless told (``method``,
``num_method``, ``cat_method``); note that a p-value method drifts *below* its threshold and a
distance *at or above* it — the verdict is Evidently's own.

Evidently is imported only when the monitor runs, and is not a dependency of Driftline: install it
with ``pip install 'driftline[evidently]'`` (Evidently 0.7 needs pandas < 3). Without it the monitor
raises :class:`MissingExtraError`, which the run records as an ``unknown`` result.

Register it by path in monitors.yaml::

    monitors:
      - name: evidently
        path: driftline.tasks.evidently_drift:EvidentlyDrift
        params: {sample_size: 50000}

Parameters: ``sample_size`` (rows per side, default 50,000; ``null`` for the whole window — Evidently
takes about a minute per million rows), ``method`` / ``num_method`` / ``cat_method`` (an Evidently
stattest name such as ``ks``, ``psi``, ``wasserstein``, ``jensenshannon``, ``chisquare``),
``threshold`` / ``num_threshold`` / ``cat_threshold``, ``drift_share`` (0.5), ``min_rows`` (default:
the model's ``drift.min_rows``).
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from driftline.core.errors import DriftlineError
from driftline.core.results import Kind, Result, Status
from driftline.stats.verdict import Threshold
from driftline.tasks.context import WindowContext
from driftline.tasks.multivariate import reference_sample

EXTRA = "evidently"
INSTALL_HINT = f"pip install 'driftline[{EXTRA}]'"


class MissingExtraError(DriftlineError):
    """An optional monitor's library is not installed (or does not import)."""


def _evidently() -> Any:
    try:
        import evidently
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError as exc:
        raise MissingExtraError(
            f"the Evidently monitor needs the {EXTRA!r} extra: {INSTALL_HINT} "
            f"(Evidently 0.7 needs pandas < 3); import failed: {exc}"
        ) from exc
    return evidently, DataDefinition, Dataset, Report, DataDriftPreset


def _stattest_names() -> dict[str, str]:
    """Evidently's display name of each stattest -> its registered name ("K-S p_value" -> "ks")."""
    try:  # not public API: without it the metric names fall back to a slug of the display name
        from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    except ImportError:
        return {}
    return {test.display_name: test.name for by_type in _registered_stat_tests.values() for test in by_type.values()}


def _metric(method: str, names: dict[str, str]) -> str:
    """``evidently:<stattest>``, the same whether Evidently chose the test or ``params`` named it."""
    return "evidently:" + re.sub(r"[^a-z0-9]+", "_", names.get(method, method).lower()).strip("_")


def _prepared(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Plain numpy dtypes Evidently understands: floats (NaN for nulls) and object categories (None)."""
    out = pd.DataFrame(index=range(len(frame)))
    for column in numeric:
        out[column] = pd.to_numeric(frame[column], errors="coerce").astype(float).to_numpy()
    for column in categorical:
        values = frame[column].astype(object)
        out[column] = values.where(values.notna(), None).to_numpy()
    return out


_STATUS = {"SUCCESS": Status.OK, "FAIL": Status.ALERT, "WARNING": Status.WARNING}


class EvidentlyDrift:
    """Evidently's ``DataDriftPreset`` as a Driftline monitor (``kind: data_drift``)."""

    kind = Kind.DATA_DRIFT

    def __init__(
        self,
        sample_size: int | None = 50_000,
        method: str | None = None,
        num_method: str | None = None,
        cat_method: str | None = None,
        threshold: float | None = None,
        num_threshold: float | None = None,
        cat_threshold: float | None = None,
        drift_share: float = 0.5,
        min_rows: int | None = None,
    ) -> None:
        self.sample_size = sample_size
        self.preset_options: dict[str, Any] = {
            "method": method,
            "num_method": num_method,
            "cat_method": cat_method,
            "threshold": threshold,
            "num_threshold": num_threshold,
            "cat_threshold": cat_threshold,
            "drift_share": drift_share,
        }
        self.drift_share = drift_share
        self.min_rows = min_rows

    def __call__(self, context: WindowContext) -> list[Result]:
        evidently, DataDefinition, Dataset, Report, DataDriftPreset = _evidently()
        model = context.model
        numeric, categorical = list(model.features.numeric), list(model.features.categorical)
        features = numeric + categorical
        min_rows = self.min_rows if self.min_rows is not None else model.drift.min_rows
        window = context.frame[features]
        size = self.sample_size
        if size is not None and len(window) > size:
            window = window.sample(n=size, random_state=0)
        # The same cached, reproducible sample of the window's reference version the multivariate monitor reads.
        reference = reference_sample(context, size if size is not None else 10_000_000)
        base = {
            "library": f"evidently {evidently.__version__}",
            "window_rows": len(window),
            "reference_rows": len(reference),
        }
        if min(len(window), len(reference)) < min_rows:
            why = f"needs {min_rows} rows per side; reference {len(reference)}, window {len(window)}"
            return [
                context.result(
                    kind=Kind.DATA_DRIFT,
                    metric="evidently:drifted_columns_share",
                    feature=None,
                    value=None,
                    threshold=self.drift_share,
                    status=Status.UNKNOWN,
                    details={**base, "reason": why},
                )
            ]
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        options = {k: v for k, v in self.preset_options.items() if v is not None}
        report = Report([DataDriftPreset(columns=features, **options)], include_tests=True)
        snapshot = report.run(
            Dataset.from_pandas(_prepared(window, numeric, categorical), data_definition=definition),
            Dataset.from_pandas(_prepared(reference, numeric, categorical), data_definition=definition),
        )
        return self._results(context, snapshot.dict(), base)

    def _results(self, context: WindowContext, snapshot: dict[str, Any], base: dict[str, Any]) -> list[Result]:
        names = _stattest_names()
        verdicts: dict[str, tuple[str, str]] = {}
        for test in snapshot.get("tests", []):
            config = test.get("metric_config") or {}
            verdicts[str(config.get("metric_id"))] = (str(test.get("status", "")).upper(), str(test.get("description")))
        results = []
        for metric in snapshot.get("metrics", []):
            config = metric.get("config") or {}
            kind = str(config.get("type", ""))
            status_name, description = verdicts.get(str(metric.get("id")), ("", ""))
            status_name = status_name.rsplit(".", 1)[-1]
            if kind.endswith(":ValueDrift"):
                method = str(config.get("method"))
                value = metric.get("value")
                results.append(
                    context.result(
                        kind=Kind.DATA_DRIFT,
                        metric=_metric(method, names),
                        feature=str(config.get("column")),
                        value=None if value is None else float(value),
                        threshold=None if config.get("threshold") is None else float(config["threshold"]),
                        status=_STATUS.get(status_name, Status.UNKNOWN),
                        details={
                            **base,
                            "method": method,
                            "evidently_test": status_name or None,
                            "description": description,
                        },
                    )
                )
            elif kind.endswith(":DriftedColumnsCount"):
                value = metric.get("value") or {}
                share = value.get("share")
                one_level = Threshold(self.drift_share, self.drift_share, None)
                status = Status.UNKNOWN if share is None else one_level.judge(float(share))
                results.append(
                    context.result(
                        kind=Kind.DATA_DRIFT,
                        metric="evidently:drifted_columns_share",
                        feature=None,
                        value=None if share is None else float(share),
                        threshold=self.drift_share,
                        status=status,
                        details={**base, "drifted_columns": value.get("count")},
                    )
                )
        return results
