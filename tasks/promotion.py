"""Promotion: the explicit, reviewable step that makes a new model version the one monitored.

``promote_model`` records a new reference version (``driftline.tasks.references.promote_reference``:
windows starting at or after ``effective_from`` are judged against it, earlier ones keep theirs),
closes the retrain request it answers, and emits ``driftline.retrain.promoted`` — the event CI/CD
webhooks listen to, so they fire on the promotion, never before. The same step is

* ``driftline promote --config F --model M --version V [--reference-start ISO --reference-end ISO]
  [--effective-from ISO]`` (the ``promote`` flow, run where you are);
* the ``promote`` flow/deployment, which an automation runs when a team's pipeline emits
  ``driftline.promotion.requested`` (``request_promotion`` below);
* the end of Driftline's example trainer, after a person approved it.

The parameters Driftline passes to a team's training deployment are ``retrain_parameters``
(documented in docs/alerts.md, "Your training pipeline").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.storage.retrains import retrain_run, update_retrain
from driftline.tasks.events import RETRAIN_PROMOTED, build_event, emit_events
from driftline.tasks.references import ReferenceVersion, promote_reference, resolve_reference

#: What a team's pipeline emits to ask for a promotion (an automation runs the ``promote`` deployment).
PROMOTION_REQUESTED = "driftline.promotion.requested"
#: The stable parameter set of ``actions.retrain.deployment`` runs (a team's flow accepts these, or **kwargs).
RETRAIN_PARAMETERS = (
    "model",
    "reason",
    "trigger_kind",
    "trigger_status",
    "window_start",
    "window_end",
    "training_start",
    "training_end",
    "raised_by_flow_run",
    "retrain_run_id",
)


def text_or_none(value: Any) -> str | None:
    """A parameter rendered from an event template: '' and 'None' (Jinja's rendering of a null) are None."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None", "null") else text


def retrain_parameters(
    model: str,
    reason: str,
    trigger_kind: str | None,
    trigger_status: str | None,
    window_start: datetime | None,
    window_end: datetime | None,
    lookback_hours: int,
    raised_by_flow_run: str | None,
    retrain_run_id: int,
) -> dict[str, Any]:
    """The documented parameters of a training run: ISO 8601 strings for instants, None when unknown.

    The suggested training range is the ``lookback_hours`` before the triggering window's end (what
    was known when the problem was seen), or before now without a window.
    """
    end = window_end
    start = end - timedelta(hours=lookback_hours) if end is not None else None
    return {
        "model": model,
        "reason": reason,
        "trigger_kind": trigger_kind,
        "trigger_status": trigger_status,
        "window_start": window_start.isoformat() if window_start else None,
        "window_end": window_end.isoformat() if window_end else None,
        "training_start": start.isoformat() if start else None,
        "training_end": end.isoformat() if end else None,
        "raised_by_flow_run": raised_by_flow_run,
        "retrain_run_id": retrain_run_id,
    }


def promoted_payload(promoted: ReferenceVersion, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``driftline.retrain.promoted`` payload: the model version and the reference version it brings."""
    described = promoted.describe()
    return {
        "model": promoted.model,
        "version": promoted.model_version,
        "reference_version": promoted.version,
        "reference_start": described["start"],
        "reference_end": described["end"],
        "effective_from": described["effective_from"],
        "warmup": promoted.warmup,
        "note": promoted.note,
        "promoted_by": promoted.promoted_by,
        "source": promoted.source,
    } | (extra or {})


def emit_promoted(results: Engine, model: str, payload: dict[str, Any]) -> list[str]:
    """Emit ``driftline.retrain.promoted`` (kept in the outbox if the API is down); the ids sent or queued."""
    sent, queued = emit_events([build_event(RETRAIN_PROMOTED, model, payload)], results, model)
    return sent + queued


def promote_model(
    results: Engine,
    model_config: ModelConfig,
    *,
    version: str,
    reference_start: datetime | str | None = None,
    reference_end: datetime | str | None = None,
    effective_from: datetime | str | None = None,
    note: str | None = None,
    promoted_by: str | None = None,
    retrain_run_id: int | None = None,
    data_engine: Engine | None = None,
    source: str = "promotion",
) -> dict[str, Any]:
    """Promote ``version`` of ``model``: a new reference version, the retrain request closed, the event.

    ``reference_start``/``reference_end`` (both or neither; neither = a warm-up on the new model's
    traffic) and ``effective_from`` (default: now) as in ``promote_reference``; with ``data_engine``
    a range smaller than ``reference.min_rows`` is refused (``ReferenceTooSmallError``) before
    anything is recorded. Raises ``ConfigError`` for a bad range or instant, and for a
    ``retrain_run_id`` of another model.
    """
    from driftline.core.errors import ConfigError

    if retrain_run_id is not None:
        request = retrain_run(results, retrain_run_id)
        if request is None or request["model"] != model_config.name:
            raise ConfigError(
                f"model {model_config.name!r}: retrain run {retrain_run_id} is not one of its retrain requests"
            )
    before = resolve_reference(results, model_config, None)
    promoted = promote_reference(
        results,
        model_config=model_config,
        version=version,
        reference_start=reference_start,
        reference_end=reference_end,
        effective_from=effective_from,
        note=note,
        promoted_by=promoted_by,
        data_engine=data_engine,
        source=source,
    )
    payload = promoted_payload(
        promoted, {"retrain_run_id": retrain_run_id, "previous_reference_version": before.version}
    )
    if retrain_run_id is not None:
        update_retrain(results, retrain_run_id, "promoted", {"promotion": payload})
    events = emit_promoted(results, model_config.name, payload)
    return payload | {"events": events, "previous_reference": before.describe(), "reference": promoted.describe()}


def request_promotion(
    model: str,
    version: str,
    *,
    reference_start: datetime | str | None = None,
    reference_end: datetime | str | None = None,
    effective_from: datetime | str | None = None,
    note: str | None = None,
    promoted_by: str | None = None,
    retrain_run_id: int | None = None,
    outbox: Engine | None = None,
) -> list[str]:
    """For a team's pipeline: emit ``driftline.promotion.requested``; the model's promote automation
    (created with ``actions.retrain``) runs the ``promote`` deployment with these values.

    Returns the event id (sent, or kept in ``outbox`` for a later delivery; empty if lost)."""
    # Every key is present (null when not given): an automation's template of a missing key renders
    # Jinja's Undefined, which the server cannot serialise (the run is never created).
    payload: dict[str, Any] = {
        "model": model,
        "version": str(version),
        "reference_start": reference_start,
        "reference_end": reference_end,
        "effective_from": effective_from,
        "note": note,
        "promoted_by": promoted_by,
        "retrain_run_id": retrain_run_id,
    }
    payload = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in payload.items()}
    sent, queued = emit_events([build_event(PROMOTION_REQUESTED, model, payload)], outbox, model)
    return sent + queued
