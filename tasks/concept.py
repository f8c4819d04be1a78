"""Concept drift: has the target, or the relation between predictions and outcomes, changed?

Rows (kind ``concept_drift``):

* prediction drift — the prediction (and score) distribution against the reference;
* label drift — the distribution of the labels that have arrived (needs ``performance.min_labels``);
* relation — classifiers with scores: the label rate per reference score decile
  (``label_rate_by_score``); regressors: the residual (label - prediction) distribution.
"""

from __future__ import annotations

from driftline.config.monitors import RESIDUAL, ModelConfig
from driftline.core.results import Kind, Result, Status
from driftline.stats.concept import RelationState, calibration_shift_of
from driftline.stats.registry import ColumnKind
from driftline.stats.verdict import Threshold, reason_sentence
from driftline.tasks.context import WindowContext
from driftline.tasks.drift import compare_columns, size_reason
from driftline.tasks.profiles import CONCEPT_STATE, relation_state
from driftline.tasks.validity import unparsed_reasons

CONCEPT_METRICS: dict[ColumnKind, tuple[str, ...]] = {
    "numeric": ("ks", "psi", "jensen_shannon"),
    "categorical": ("chi_square", "psi", "jensen_shannon"),
}
#: Weighted mean change of the label rate per score decile: warning / alert.
RELATION_LEVELS = (0.05, 0.10)


def label_columns(model_config: ModelConfig) -> set[str]:
    return {c for c in (model_config.label_field, RESIDUAL if model_config.task == "regression" else None) if c}


def evaluate_concept(context: WindowContext) -> list[Result]:
    model, reference, current = context.model, context.reference, context.current
    targets = [(c, k) for c, k in model.target_columns() if c not in (model.latency_column, model.error_column)]
    state = current.states.get(CONCEPT_STATE) if current is not None else None
    if not isinstance(state, RelationState):
        # No state folded with the window's profile (a caller's own context): count on the frame now.
        state = relation_state(context.frame, model, reference)
    labelled = state.labelled
    min_labels = model.performance.min_labels
    column_reasons = {
        c: f"only {labelled} labelled rows in the window, fewer than performance.min_labels={min_labels}"
        for c in label_columns(model)
        if labelled < min_labels
    }
    numeric_targets = [c for c, kind in targets if kind == "numeric"]
    column_reasons = unparsed_reasons(current, numeric_targets) | column_reasons
    reason = size_reason(model, reference, current)
    results = compare_columns(
        model,
        context.window,
        reference,
        current,
        targets,
        Kind.CONCEPT_DRIFT,
        lambda kind: CONCEPT_METRICS[kind],
        reason,
        column_reasons,
    )
    for r in results:
        role = (
            "label"
            if r.feature == model.label_field
            else "residual"
            if r.feature == RESIDUAL
            else "score"
            if r.feature == model.score_column
            else "prediction"
        )
        r.details["target"] = role
    if model.task == "classification" and model.score_column and model.label_field:
        family = sum(1 for r in results if r.details.get("primary") and r.status != Status.UNKNOWN)
        results.append(_relation(context, state, reason, family + 1))
    return results


def _relation(context: WindowContext, state: RelationState, reason: str | None, family: int = 1) -> Result:
    """The label rate per score bin against the reference's. ``family`` is the number of tests in the
    window's concept-drift family (the primary statistic of each target, and this one): the p-value
    is Bonferroni-adjusted for it, so this check gets the same window-level treatment as the others."""
    model = context.model
    warning, alert = RELATION_LEVELS
    threshold = Threshold(warning, alert, model.drift.alpha, model.drift.alert_alpha)
    labelled = state.labelled
    base = {**threshold.as_details(), "labelled_rows": labelled}
    calibration = context.reference.fitted.calibration if context.reference else None
    if reason is None and labelled < model.performance.min_labels:
        reason = f"only {labelled} labelled rows, fewer than performance.min_labels={model.performance.min_labels}"
    if reason is None and not calibration:
        reason = "reference profile has no score/label summary"
    if reason is not None:
        return context.result(
            kind=Kind.CONCEPT_DRIFT,
            metric="label_rate_by_score",
            feature=model.score_column,
            value=None,
            threshold=alert,
            status=Status.UNKNOWN,
            details={**base, "reason": reason},
        )
    assert calibration is not None
    outcome = calibration_shift_of(calibration, state)
    p_adjusted = None if outcome.pvalue is None else min(1.0, outcome.pvalue * family)
    status = threshold.judge(outcome.statistic, p_adjusted)
    details = {
        **outcome.details,
        **base,
        "p_value": outcome.pvalue,
        "p_value_adjusted": p_adjusted,
        "family_size": family,
        "target": "relation",
        "primary": True,
    }
    if status in (Status.WARNING, Status.ALERT):
        details["reason"] = reason_sentence(
            subject=f"label rate by score ({model.score_column})",
            label="mean change",
            value=outcome.statistic,
            status=status,
            threshold=threshold,
            pvalue=p_adjusted,
            rows=labelled,
        ).replace(" rows", " labelled rows", 1)
    return context.result(
        kind=Kind.CONCEPT_DRIFT,
        metric="label_rate_by_score",
        feature=model.score_column,
        value=outcome.statistic,
        threshold=alert,
        status=status,
        details=details,
    )
