"""Data drift: compare a window profile with the reference profile, column by column."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prefect import task

from driftline.config import ModelConfig
from driftline.context import WindowContext
from driftline.results import Kind, Result, Status, worst
from driftline.stats import distances
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import CategoricalProfile, NumericProfile
from driftline.stats.registry import DEFAULT_METRICS, ColumnKind, get_statistic
from driftline.stats.verdict import adjust_pvalues, judge
from driftline.tasks._prefect import PURE
from driftline.tasks.validity import unparsed_reasons
from driftline.window import Window

#: MLRun's "general drift": mean of TVD and Hellinger over features; potential 0.5, detected 0.7.
GENERAL_DRIFT_LEVELS = (0.5, 0.7)


def metrics_for(model: ModelConfig, kind: ColumnKind) -> tuple[str, ...]:
    configured = model.drift.numeric_metrics if kind == "numeric" else model.drift.categorical_metrics
    return tuple(configured) if configured else DEFAULT_METRICS[kind]


def levels_for(model: ModelConfig, metric: str, feature: str, kind: ColumnKind) -> tuple[float, float]:
    """Warning/alert levels: per-feature override, else per-model, else the registry default."""
    statistic = get_statistic(kind, metric)
    levels = model.drift.features.get(feature, {}).get(metric) or model.drift.thresholds.get(metric)
    return (levels.warning, levels.alert) if levels else (statistic.warning, statistic.alert)


def size_reason(model: ModelConfig, reference: ModelProfile | None, current: ModelProfile) -> str | None:
    """Why the window cannot be judged at all, or ``None``."""
    if reference is None or reference.row_count == 0:
        return "reference range has no rows"
    if reference.row_count < model.drift.min_rows:
        return f"reference has {reference.row_count} rows, fewer than min_rows={model.drift.min_rows}"
    if current.row_count < model.drift.min_rows:
        return f"window has {current.row_count} rows, fewer than min_rows={model.drift.min_rows}"
    return None


def compare_columns(
    model: ModelConfig,
    window: Window,
    reference: ModelProfile | None,
    current: ModelProfile,
    columns: Sequence[tuple[str, ColumnKind]],
    result_kind: Kind,
    metrics: Callable[[ColumnKind], Sequence[str]],
    reason: str | None,
    column_reasons: dict[str, str] | None = None,
) -> list[Result]:
    """One result per (column, metric); verdicts gated by BH-adjusted p-values across the columns.

    ``reason`` (the whole window cannot be judged) or ``column_reasons[column]`` make ``unknown``
    rows that say why, never an exception.
    """
    column_reasons = column_reasons or {}
    computed = []
    for column, kind in columns:
        for metric in metrics(kind):
            statistic = get_statistic(kind, metric)
            why = reason or column_reasons.get(column)
            ref_profile = reference.features.get(column) if reference else None
            win_profile = current.features.get(column)
            if why is None and (ref_profile is None or win_profile is None):
                why = f"column {column!r} is not in the reference profile (refit by changing the reference)"
            outcome = None if why else statistic.compute(ref_profile, win_profile)
            computed.append((column, kind, statistic, outcome, why))

    adjusted: dict[tuple[str, str], float | None] = {}
    for metric_name in {s.name for _, _, s, _, _ in computed}:
        keyed = [(c, o) for c, _, s, o, _ in computed if s.name == metric_name]
        values = adjust_pvalues([o.pvalue if o is not None else None for _, o in keyed])
        adjusted.update({(c, metric_name): v for (c, _), v in zip(keyed, values, strict=True)})

    def row(
        metric: str, column: str, value: float | None, threshold: float | None, status: Status, details: dict[str, Any]
    ) -> Result:
        return Result(
            model.name, window.start, window.end, result_kind, metric, column, value, threshold, status, details
        )

    results = []
    alpha = model.drift.alpha
    for column, kind, statistic, outcome, why in computed:
        warning, alert = levels_for(model, statistic.name, column, kind)
        base = {"column_kind": kind, "warning": warning, "alert": alert}

        if outcome is None:
            results.append(row(statistic.name, column, None, alert, Status.UNKNOWN, {**base, "reason": why}))
            continue
        p_adj = adjusted.get((column, statistic.name))
        effect = outcome.details.get("cohens_w", np.nan) if statistic.effect == "cohens_w" else outcome.statistic
        details = {**outcome.details, **base}
        if outcome.pvalue is not None:
            details |= {"p_value": outcome.pvalue, "p_value_adjusted": p_adj, "alpha": alpha}
        if statistic.effect != "statistic":
            details["effect"] = statistic.effect
            details["effect_value"] = effect
        ref_profile, win_profile = reference.features[column], current.features[column]  # type: ignore[union-attr]
        if isinstance(ref_profile, NumericProfile) and isinstance(win_profile, NumericProfile):
            details |= {"reference_mean": _round(ref_profile.mean), "window_mean": _round(win_profile.mean)}
        if not np.isfinite(outcome.statistic):
            status = Status.UNKNOWN
            details.setdefault("reason", f"{statistic.name} is not a finite number ({outcome.statistic})")
        else:
            status = judge(effect, warning, alert, p_adj, alpha)
        results.append(
            row(
                statistic.name,
                column,
                outcome.statistic,
                alert if statistic.effect == "statistic" else None,
                status,
                details,
            )
        )
    return results


def dataset_drift(
    model: ModelConfig,
    window: Window,
    reference: ModelProfile | None,
    current: ModelProfile,
    per_feature: list[Result],
    reason: str | None,
) -> list[Result]:
    """Window-level rows: the share of drifted features, and MLRun's general drift preset."""
    features = [name for name, _ in model.features.items()]
    if reason is not None or reference is None:
        unknown = {"reason": reason or "no reference"}
        return [
            Result(
                model.name,
                window.start,
                window.end,
                Kind.DATA_DRIFT,
                "drifted_features_share",
                None,
                None,
                model.drift.dataset_alert,
                Status.UNKNOWN,
                unknown,
            ),
            Result(
                model.name,
                window.start,
                window.end,
                Kind.DATA_DRIFT,
                "general_drift",
                None,
                None,
                GENERAL_DRIFT_LEVELS[1],
                Status.UNKNOWN,
                unknown,
            ),
        ]
    verdicts = {f: worst([r.status for r in per_feature if r.feature == f]) for f in features}
    judged = [f for f, s in verdicts.items() if s != Status.UNKNOWN]
    drifted = sorted(f for f, s in verdicts.items() if s == Status.ALERT)
    share = len(drifted) / len(judged) if judged else float("nan")
    share_status = (
        Status.UNKNOWN
        if not judged
        else Status.ALERT
        if share >= model.drift.dataset_alert
        else Status.WARNING
        if share >= model.drift.dataset_warning
        else Status.OK
    )
    rows = [
        Result(
            model.name,
            window.start,
            window.end,
            Kind.DATA_DRIFT,
            "drifted_features_share",
            None,
            share if judged else None,
            model.drift.dataset_alert,
            share_status,
            {
                "drifted": drifted,
                "judged_features": len(judged),
                "warning": model.drift.dataset_warning,
                "alert": model.drift.dataset_alert,
            }
            | ({} if judged else {"reason": "no feature could be judged (each one is unknown)"}),
        )
    ]

    scores = []
    for name, kind in model.features.items():
        ref_p, win_p = reference.features.get(name), current.features.get(name)
        if ref_p is None or win_p is None:
            continue
        if kind == "numeric" and isinstance(ref_p, NumericProfile):
            pair = (distances.tvd_numeric(ref_p, win_p), distances.hellinger_numeric(ref_p, win_p))
        elif isinstance(ref_p, CategoricalProfile):
            pair = (distances.tvd_categorical(ref_p, win_p), distances.hellinger_categorical(ref_p, win_p))
        else:
            continue
        if all(np.isfinite(p.statistic) for p in pair):
            scores.append((pair[0].statistic + pair[1].statistic) / 2)
    general = float(np.mean(scores)) if scores else float("nan")
    potential, detected = GENERAL_DRIFT_LEVELS
    general_status = (
        Status.UNKNOWN
        if not scores
        else Status.ALERT
        if general >= detected
        else Status.WARNING
        if general >= potential
        else Status.OK
    )
    rows.append(
        Result(
            model.name,
            window.start,
            window.end,
            Kind.DATA_DRIFT,
            "general_drift",
            None,
            general if scores else None,
            detected,
            general_status,
            {"preset": "mlrun", "potential": potential, "detected": detected, "features": len(scores)}
            | ({} if scores else {"reason": "no feature has a finite TVD and Hellinger distance"}),
        )
    )
    return rows


def evaluate_drift(
    model: ModelConfig, window: Window, reference: ModelProfile | None, current: ModelProfile
) -> list[Result]:
    """Per-feature drift rows for every configured feature and metric, then the window-level rows."""
    reason = size_reason(model, reference, current)
    per_feature = compare_columns(
        model,
        window,
        reference,
        current,
        model.features.items(),
        Kind.DATA_DRIFT,
        lambda kind: metrics_for(model, kind),
        reason,
        unparsed_reasons(current, model.features.numeric),
    )
    return per_feature + dataset_drift(model, window, reference, current, per_feature, reason)


def drift_monitor(context: WindowContext) -> list[Result]:
    return evaluate_drift(context.model, context.window, context.reference, context.current)


def _round(value: float) -> float | None:
    return None if value != value else round(value, 6)


evaluate_drift_task = task(evaluate_drift, name="evaluate-drift", **PURE)
