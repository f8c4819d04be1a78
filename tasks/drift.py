"""Data drift: compare a window profile with the reference profile, column by column."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from driftline.config.monitors import ModelConfig
from driftline.core.results import Kind, Result, Status, worst
from driftline.core.window import Window
from driftline.stats import distances
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import CategoricalProfile, NumericProfile
from driftline.stats.registry import DEFAULT_METRICS, ColumnKind, get_statistic
from driftline.stats.verdict import Threshold, format_number, judge_family, reason_sentence
from driftline.tasks.context import WindowContext
from driftline.tasks.validity import unparsed_reasons

#: MLRun's "general drift": mean of TVD and Hellinger over features; potential 0.5, detected 0.7.
GENERAL_DRIFT_LEVELS = (0.5, 0.7)


def metrics_for(model_config: ModelConfig, kind: ColumnKind) -> tuple[str, ...]:
    configured = model_config.drift.numeric_metrics if kind == "numeric" else model_config.drift.categorical_metrics
    return tuple(configured) if configured else DEFAULT_METRICS[kind]


def levels_for(model_config: ModelConfig, metric: str, feature: str, kind: ColumnKind) -> tuple[float, float]:
    """Warning/alert levels: per-feature override, else per-model, else the registry default."""
    statistic = get_statistic(kind, metric)
    levels = model_config.drift.features.get(feature, {}).get(metric) or model_config.drift.thresholds.get(metric)
    return (levels.warning, levels.alert) if levels else (statistic.warning, statistic.alert)


def threshold_for(model_config: ModelConfig, metric: str, feature: str, kind: ColumnKind) -> Threshold:
    """The one threshold object a drift statistic is judged with (levels, alpha, alert alpha)."""
    warning, alert = levels_for(model_config, metric, feature, kind)
    return Threshold(warning, alert, model_config.drift.alpha, model_config.drift.alert_alpha)


def primary_metric(model_config: ModelConfig, kind: ColumnKind, metrics: Sequence[str]) -> str | None:
    """The metric whose verdict is a column's verdict: ``drift.primary[kind]`` if configured, else the first."""
    wanted = model_config.drift.primary.get(kind)
    if wanted in metrics:
        return wanted
    return metrics[0] if metrics else None


#: How a statistic is named in a sentence.
LABELS = {
    "ks": "KS",
    "wasserstein": "Wasserstein",
    "psi": "PSI",
    "jensen_shannon": "Jensen-Shannon",
    "hellinger": "Hellinger",
    "tvd": "TVD",
    "chi_square": "chi-square effect w",
    "unseen_share": "unseen share",
}


def drift_reason(
    result_feature: str,
    metric: str,
    effect: float,
    status: Status,
    threshold: Threshold,
    pvalue: float | None,
    rows: int | None,
    reference_rows: int | None,
    details: dict[str, Any],
) -> str:
    """The sentence of a flagged drift row; chi-square on its effect scale with Cramér's V and its levels."""
    extra = None
    if metric == "chi_square":
        extra = f"Cramér's V {format_number(details.get('cramers_v'))} over {details.get('levels')} levels"
    return reason_sentence(
        subject=result_feature,
        label=LABELS.get(metric, metric),
        value=effect,
        status=status,
        threshold=threshold,
        pvalue=pvalue,
        rows=rows,
        reference_rows=reference_rows,
        extra=extra,
    )


def size_reason(model_config: ModelConfig, reference: ModelProfile | None, current: ModelProfile) -> str | None:
    """Why the window cannot be judged at all, or ``None``."""
    if reference is None or reference.row_count == 0:
        return "reference range has no rows"
    if reference.row_count < model_config.drift.min_rows:
        return f"reference has {reference.row_count} rows, fewer than min_rows={model_config.drift.min_rows}"
    if current.row_count < model_config.drift.min_rows:
        return f"window has {current.row_count} rows, fewer than min_rows={model_config.drift.min_rows}"
    return None


def compare_columns(
    model_config: ModelConfig,
    window: Window,
    reference: ModelProfile | None,
    current: ModelProfile,
    columns: Sequence[tuple[str, ColumnKind]],
    result_kind: Kind,
    metrics: Callable[[ColumnKind], Sequence[str]],
    reason: str | None,
    column_reasons: dict[str, str] | None = None,
) -> list[Result]:
    """One result per (column, metric); one verdict per column, from its primary statistic.

    The primary statistic of each column (:func:`primary_metric`) carries the column's verdict; the
    other metrics are computed and stored as informational rows (status ``ok`` unless unknown,
    ``details.informational``, and the level they alone would have reached in
    ``details.informational_level``). The primary p-values of all the columns are one family,
    Holm-adjusted together (:func:`judge_family`), so the chance that an unchanged window flags any
    column is about ``alpha`` (warning) or ``alert_alpha`` (alert), however many columns there are.

    ``reason`` (the whole window cannot be judged) or ``column_reasons[column]`` make ``unknown``
    rows that say why, never an exception.
    """
    column_reasons = column_reasons or {}
    computed: list[list[Any]] = []
    for column, kind in columns:
        names = list(metrics(kind))
        primary = primary_metric(model_config, kind, names)
        for metric in names:
            statistic = get_statistic(kind, metric)
            why = reason or column_reasons.get(column)
            ref_profile = reference.features.get(column) if reference else None
            win_profile = current.features.get(column)
            if why is None and (ref_profile is None or win_profile is None):
                why = f"column {column!r} is not in the reference profile (refit by changing the reference)"
            outcome = None if why else statistic.compute(ref_profile, win_profile)
            computed.append([column, kind, statistic, outcome, why, metric == primary or statistic.always_judged])
        # A primary that is undefined on this window (an infinite value makes W1 infinite) hands the
        # column's verdict to the first configured statistic that is defined.
        mine = [c for c in computed if c[0] == column]
        chosen = next((c for c in mine if c[2].name == primary), None)
        if chosen is not None and chosen[3] is not None and not np.isfinite(chosen[3].statistic):
            fallback = next(
                (c for c in mine if c[3] is not None and np.isfinite(c[3].statistic) and not c[2].always_judged),
                None,
            )
            if fallback is not None:
                chosen[5] = False
                fallback[5] = True
                fallback[3] = fallback[3]._replace(details={**fallback[3].details, "primary_fallback_for": primary})

    def effect_of(statistic: Any, outcome: Any) -> float:
        if outcome is None:
            return float("nan")
        return outcome.details.get("cohens_w", np.nan) if statistic.effect == "cohens_w" else outcome.statistic

    # The family: each judged column's primary statistic.
    family = [i for i, (_, _, _, outcome, _, primary) in enumerate(computed) if primary and outcome is not None]
    family_thresholds = [
        threshold_for(model_config, computed[i][2].name, computed[i][0], computed[i][1]) for i in family
    ]
    _, family_adjusted = judge_family(
        [effect_of(computed[i][2], computed[i][3]) for i in family],
        [computed[i][3].pvalue for i in family],
        family_thresholds,
    )
    adjusted_by_test = {(computed[i][0], computed[i][2].name): p for i, p in zip(family, family_adjusted, strict=True)}

    def row(
        metric: str, column: str, value: float | None, threshold: float | None, status: Status, details: dict[str, Any]
    ) -> Result:
        return Result(
            model=model_config.name,
            window_start=window.start,
            window_end=window.end,
            kind=result_kind,
            metric=metric,
            feature=column,
            value=value,
            threshold=threshold,
            status=status,
            details=details,
        )

    results = []
    for column, kind, statistic, outcome, why, primary in computed:
        threshold = threshold_for(model_config, statistic.name, column, kind)
        base = {"column_kind": kind, **threshold.as_details(), "primary": primary}

        if outcome is None:
            results.append(row(statistic.name, column, None, threshold.alert, Status.UNKNOWN, {**base, "reason": why}))
            continue
        ref_profile, win_profile = reference.features[column], current.features[column]  # type: ignore[union-attr]
        # The family is the primary statistics (Holm across the columns). An informational metric is
        # shown with its own p-value Bonferroni-adjusted for the family's size (it decides nothing).
        if outcome.pvalue is None:
            p_adj = None
        elif primary:
            p_adj = adjusted_by_test.get((column, statistic.name))
        else:
            p_adj = min(1.0, outcome.pvalue * max(len(family), 1))
        effect = effect_of(statistic, outcome)
        details = {**outcome.details, **base}
        details |= {"rows": int(win_profile.n), "reference_rows": int(ref_profile.n)}
        if outcome.pvalue is not None:
            details |= {"p_value": outcome.pvalue, "p_value_adjusted": p_adj}
        if statistic.effect != "statistic":
            details["effect"] = statistic.effect
            details["effect_value"] = effect
        if isinstance(ref_profile, NumericProfile) and isinstance(win_profile, NumericProfile):
            details |= {"reference_mean": _round(ref_profile.mean), "window_mean": _round(win_profile.mean)}
        if not np.isfinite(outcome.statistic):
            status = Status.UNKNOWN
            details.setdefault("reason", f"{statistic.name} is not a finite number ({outcome.statistic})")
        else:
            status = threshold.judge(effect, p_adj if outcome.pvalue is not None else None)
            if not primary:
                details |= {"informational": True, "informational_level": str(status)}
                status = Status.OK
            elif status in (Status.WARNING, Status.ALERT):
                details["reason"] = drift_reason(
                    column,
                    statistic.name,
                    effect,
                    status,
                    threshold,
                    p_adj,
                    int(win_profile.n),
                    int(ref_profile.n),
                    details,
                )
        results.append(row(statistic.name, column, outcome.statistic, threshold.alert, status, details))
    return results


def dataset_drift(
    model_config: ModelConfig,
    window: Window,
    reference: ModelProfile | None,
    current: ModelProfile,
    per_feature: list[Result],
    reason: str | None,
) -> list[Result]:
    """Window-level rows: the share of drifted features, and MLRun's general drift preset."""
    features = [name for name, _ in model_config.features.items()]
    if reason is not None or reference is None:
        return [
            Result(
                model=model_config.name,
                window_start=window.start,
                window_end=window.end,
                kind=Kind.DATA_DRIFT,
                metric=metric,
                feature=None,
                value=None,
                threshold=threshold,
                status=Status.UNKNOWN,
                details={"reason": reason or "no reference"},
            )
            for metric, threshold in (
                ("drifted_features_share", model_config.drift.dataset_alert),
                ("general_drift", GENERAL_DRIFT_LEVELS[1]),
            )
        ]
    verdicts = {f: worst([r.status for r in per_feature if r.feature == f]) for f in features}
    judged = [f for f, s in verdicts.items() if s != Status.UNKNOWN]
    drifted = sorted(f for f, s in verdicts.items() if s == Status.ALERT)
    share = len(drifted) / len(judged) if judged else float("nan")
    share_status = Threshold(model_config.drift.dataset_warning, model_config.drift.dataset_alert, None).judge(
        share
    )  # NaN: unknown
    share_level = (
        model_config.drift.dataset_alert if share_status == Status.ALERT else model_config.drift.dataset_warning
    )
    rows = [
        Result(
            model=model_config.name,
            window_start=window.start,
            window_end=window.end,
            kind=Kind.DATA_DRIFT,
            metric="drifted_features_share",
            feature=None,
            value=share if judged else None,
            threshold=model_config.drift.dataset_alert,
            status=share_status,
            details={
                "drifted": drifted,
                "judged_features": len(judged),
                "warning": model_config.drift.dataset_warning,
                "alert": model_config.drift.dataset_alert,
            }
            | ({} if judged else {"reason": "no feature could be judged (each one is unknown)"})
            | (
                {
                    "reason": f"{len(drifted)} of {len(judged)} features in alert ({', '.join(drifted)}): "
                    f"share {share:.0%} ≥ {share_level:.0%} ({share_status})"
                }
                if share_status in (Status.WARNING, Status.ALERT)
                else {}
            ),
        )
    ]

    scores = []
    for name, kind in model_config.features.items():
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
    general_status = Threshold(potential, detected, None).judge(general)  # NaN (no scores): unknown
    rows.append(
        Result(
            model=model_config.name,
            window_start=window.start,
            window_end=window.end,
            kind=Kind.DATA_DRIFT,
            metric="general_drift",
            feature=None,
            value=general if scores else None,
            threshold=detected,
            status=general_status,
            details={"preset": "mlrun", "potential": potential, "detected": detected, "features": len(scores)}
            | ({} if scores else {"reason": "no feature has a finite TVD and Hellinger distance"})
            | (
                {
                    "reason": f"general drift (mean of TVD and Hellinger over {len(scores)} features) "
                    f"{general:.2f} ≥ {detected if general_status == Status.ALERT else potential} ({general_status})"
                }
                if general_status in (Status.WARNING, Status.ALERT)
                else {}
            ),
        )
    )
    return rows


def evaluate_drift(
    model_config: ModelConfig, window: Window, reference: ModelProfile | None, current: ModelProfile
) -> list[Result]:
    """Per-feature drift rows for every configured feature and metric, then the window-level rows."""
    reason = size_reason(model_config, reference, current)
    per_feature = compare_columns(
        model_config,
        window,
        reference,
        current,
        model_config.features.items(),
        Kind.DATA_DRIFT,
        lambda kind: metrics_for(model_config, kind),
        reason,
        unparsed_reasons(current, model_config.features.numeric),
    )
    return per_feature + dataset_drift(model_config, window, reference, current, per_feature, reason)


def drift_monitor(context: WindowContext) -> list[Result]:
    return evaluate_drift(context.model, context.window, context.reference, context.current)


def _round(value: float) -> float | None:
    return None if value != value else round(value, 6)
