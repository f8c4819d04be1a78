"""Data drift: compare a window profile with the reference profile, feature by feature."""

from __future__ import annotations

from prefect import task

from driftline.config import ModelConfig
from driftline.results import Kind, Result, Status
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import NumericProfile
from driftline.stats.registry import DEFAULT_METRICS, ColumnKind, get_statistic
from driftline.stats.verdict import adjust_pvalues, judge
from driftline.tasks._prefect import PURE
from driftline.window import Window


def metrics_for(model: ModelConfig, kind: ColumnKind) -> tuple[str, ...]:
    configured = model.drift.numeric_metrics if kind == "numeric" else model.drift.categorical_metrics
    return tuple(configured) if configured else DEFAULT_METRICS[kind]


def levels_for(model: ModelConfig, metric: str, feature: str, kind: ColumnKind) -> tuple[float, float]:
    """Warning/alert levels: per-feature override, else per-model, else the registry default."""
    statistic = get_statistic(kind, metric)
    levels = model.drift.features.get(feature, {}).get(metric) or model.drift.thresholds.get(metric)
    return (levels.warning, levels.alert) if levels else (statistic.warning, statistic.alert)


def evaluate_drift(
    model: ModelConfig, window: Window, reference: ModelProfile | None, current: ModelProfile
) -> list[Result]:
    """One result per (feature, metric), verdicts gated by BH-adjusted p-values across features.

    A window or reference with fewer than ``drift.min_rows`` rows gives ``unknown`` rows with the
    reason in ``details``, never an exception.
    """
    reason = None
    if reference is None or reference.row_count == 0:
        reason = "reference range has no rows"
    elif reference.row_count < model.drift.min_rows:
        reason = f"reference has {reference.row_count} rows, fewer than min_rows={model.drift.min_rows}"
    elif current.row_count < model.drift.min_rows:
        reason = f"window has {current.row_count} rows, fewer than min_rows={model.drift.min_rows}"

    planned = [
        (feature, kind, metric) for feature, kind in model.features.items() for metric in metrics_for(model, kind)
    ]
    computed = []
    for feature, kind, metric in planned:
        statistic = get_statistic(kind, metric)
        if reason is not None:
            computed.append((feature, kind, statistic, None))
            continue
        assert reference is not None
        ref_profile, win_profile = reference.features.get(feature), current.features.get(feature)
        if ref_profile is None or win_profile is None:
            computed.append((feature, kind, statistic, None))
            continue
        computed.append((feature, kind, statistic, statistic.compute(ref_profile, win_profile)))

    # Multiplicity: adjust each metric's p-values across the window's features.
    adjusted: dict[tuple[str, str], float | None] = {}
    for metric_name in {s.name for _, _, s, _ in computed}:
        keyed = [(f, r) for f, _, s, r in computed if s.name == metric_name]
        values = adjust_pvalues([r.pvalue if r is not None else None for _, r in keyed])
        adjusted.update({(f, metric_name): v for (f, _), v in zip(keyed, values, strict=True)})

    results = []
    alpha = model.drift.alpha
    for feature, kind, statistic, outcome in computed:
        warning, alert = levels_for(model, statistic.name, feature, kind)
        if outcome is None:
            why = reason or f"feature {feature!r} is not in the profiles"
            results.append(
                Result(
                    model.name,
                    window.start,
                    window.end,
                    Kind.DATA_DRIFT,
                    statistic.name,
                    feature,
                    None,
                    alert,
                    Status.UNKNOWN,
                    {"reason": why, "column_kind": kind},
                )
            )
            continue
        p_adj = adjusted.get((feature, statistic.name))
        effect = (
            outcome.details.get("cramers_v", float("nan")) if statistic.effect == "cramers_v" else outcome.statistic
        )
        status = judge(effect, warning, alert, p_adj, alpha)
        details = {
            **outcome.details,
            "column_kind": kind,
            "warning": warning,
            "alert": alert,
        }
        if outcome.pvalue is not None:
            details |= {"p_value": outcome.pvalue, "p_value_adjusted": p_adj, "alpha": alpha}
        if statistic.effect != "statistic":
            details["effect"] = statistic.effect
        ref_profile = reference.features[feature] if reference else None
        if isinstance(ref_profile, NumericProfile):
            win_profile = current.features[feature]
            assert isinstance(win_profile, NumericProfile)
            details |= {"reference_mean": _round(ref_profile.mean), "window_mean": _round(win_profile.mean)}
        results.append(
            Result(
                model.name,
                window.start,
                window.end,
                Kind.DATA_DRIFT,
                statistic.name,
                feature,
                outcome.statistic,
                alert if statistic.effect == "statistic" else None,
                status,
                details,
            )
        )
    return results


def _round(value: float) -> float | None:
    return None if value != value else round(value, 6)


evaluate_drift_task = task(evaluate_drift, name="evaluate-drift", **PURE)
