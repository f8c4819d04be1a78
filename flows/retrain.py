"""Retraining: the request an automation makes, and Driftline's example trainer.

``retrain_request`` (deployment ``retrain-request/retrain-request``) is what a model's retrain
automation runs when a kind reaches ``actions.retrain.min_status``:

1. skips (state ``Skipped: cooldown``) when the model's previous retrain started within
   ``actions.retrain.cooldown_hours``; the request is recorded in ``driftline.retrain_runs`` either way;
2. runs ``actions.retrain.deployment`` — the team's own training pipeline, or Driftline's example
   trainer ``retrain/retrain`` — with the documented parameters (``tasks.promotion.RETRAIN_PARAMETERS``:
   model, reason, the triggering kind/status/window, the suggested training range, the monitor run
   that raised it, the retrain-log row), and records that run (state ``Dispatched``).

Nothing is promoted here: a promotion is its own step (``flows/promote.py``, ``driftline promote``).

``retrain`` (deployment ``retrain/retrain``) is the example trainer, composed of the building blocks
in ``tasks/training.py``: it reads the labelled rows of the suggested range, trains a candidate,
compares it with the incumbent on the newest rows (the holdout), and — if it is better and a person
approved it (``require_approval``, the default: the run pauses in the Prefect UI showing both scores
and the data) — records the model version and promotes it (a new reference version, the
``driftline.retrain.promoted`` event). Each run ends in a named state (``Promoted``, ``Rejected``,
``Skipped: cooldown``; a failure is ``Failed``), its name says the outcome (``retrain-loan: promoted``),
and it leaves a table artifact ``retrain-<model>`` with the decision, the scores, the data ranges and
the reference versions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, State
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.config.notifications import DEFAULT_ACTIONS, DEFAULT_RETRAIN, RetrainAction
from driftline.core.window import optional_instant
from driftline.storage.connections import load_run_config, open_databases
from driftline.storage.results import latest_window_end
from driftline.storage.retrains import claim_retrain, latest_model_version, retrain_run, update_retrain
from driftline.tasks.promotion import emit_promoted, promoted_payload, retrain_parameters, text_or_none
from driftline.tasks.references import ReferenceTooSmallError, promote_reference, resolve_reference
from driftline.tasks.training import (
    RetrainApproval,
    TrainingData,
    approval_request,
    compare_task,
    record_candidate,
    train_candidate_task,
    training_rows_task,
)


def retrain_settings(model_config: ModelConfig) -> RetrainAction:
    """The model's ``actions.retrain``; the example trainer's defaults when it has none (a run by hand)."""
    actions = getattr(model_config, "actions", None) or DEFAULT_ACTIONS
    return actions.retrain or DEFAULT_RETRAIN


def _utc(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 instant (naive = UTC) as an aware UTC datetime; None for None, '' or 'None'."""
    return optional_instant(value if isinstance(value, datetime) else text_or_none(value))


def name_run(name: str) -> None:
    """Rename the current flow run so the UI's run list says the outcome (``retrain-loan: promoted``)."""
    if flow_run.id is None:
        return
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(flow_run.id, name=name)
    except Exception as exc:  # a cosmetic step: never fail the outcome over it
        get_run_logger().warning("could not rename the flow run: %s", type(exc).__name__)


def outcome_artifact(key: str, rows: dict[str, Any], description: str) -> None:
    """A two-column table artifact (``item``, ``value``) of the run's decision and its inputs."""
    table = [{"item": item, "value": "" if value is None else str(value)} for item, value in rows.items()]
    create_table_artifact(key=key, table=table, description=description)


# --- the request -------------------------------------------------------------------------------


def _request_name(model: str) -> str:
    return f"retrain-request-{model}"


@flow(name="retrain-request", flow_run_name="retrain-request-{model}")
def retrain_request(
    model: str,
    reason: str = "",
    trigger_kind: str | None = None,
    trigger_status: str | None = None,
    window_start: str | None = None,
    window_end: str | None = None,
    raised_by_flow_run: str | None = None,
    config_path: str | None = None,
) -> State:
    """Apply the cooldown, record the request, run the model's training deployment with the documented
    parameters. Window bounds are ISO 8601 strings (automations render them from the event)."""
    logger = get_run_logger()
    since, until = _utc(window_start), _utc(window_end)
    config = load_run_config(config_path)
    model_config = config.model(model)
    settings = (getattr(model_config, "actions", None) or DEFAULT_ACTIONS).retrain
    if settings is None or not settings.enabled:
        name_run(f"{_request_name(model)}: skipped (not configured)")
        return Completed(name="Skipped: not configured", message=f"{model} has no actions.retrain", data={})
    databases = open_databases(config)
    run_id = str(flow_run.id) if flow_run.id else None
    retrain_id, previous = claim_retrain(databases.results, model, reason, run_id, settings.cooldown_hours)
    rows: dict[str, Any] = {
        "model": model,
        "reason": reason,
        "trigger": f"{text_or_none(trigger_kind)} {text_or_none(trigger_status)}",
        "window": f"{window_start} .. {window_end}",
        "retrain run (driftline.retrain_runs)": retrain_id,
    }
    if previous is not None:
        message = f"retrained at {previous.isoformat()}, within the {settings.cooldown_hours}h cooldown"
        logger.info("%s: %s: skipped", model, message)
        name_run(f"{_request_name(model)}: skipped (cooldown)")
        outcome_artifact(
            f"retrain-request-{model}", rows | {"decision": "skipped: cooldown", "why": message}, "Retrain request"
        )
        return Completed(
            name="Skipped: cooldown", message=message, data={"status": "skipped", "retrain_id": retrain_id}
        )
    parameters = retrain_parameters(
        model,
        reason,
        text_or_none(trigger_kind),
        text_or_none(trigger_status),
        since,
        until,
        settings.lookback_hours,
        text_or_none(raised_by_flow_run),
        retrain_id,
    )
    try:
        from prefect.deployments import run_deployment

        started = run_deployment(settings.deployment, parameters=parameters, timeout=0)
    except Exception as exc:
        update_retrain(databases.results, retrain_id, "failed", {"error": f"{type(exc).__name__}: {exc}"[:500]})
        name_run(f"{_request_name(model)}: failed")
        raise
    dispatched = {"deployment": settings.deployment, "flow_run_id": str(started.id), "flow_run_name": started.name}
    update_retrain(databases.results, retrain_id, None, dispatched | {"parameters": parameters})
    logger.info("%s: ran %s (flow run %s) with %s", model, settings.deployment, started.name, parameters)
    name_run(f"{_request_name(model)}: dispatched to {settings.deployment}")
    outcome_artifact(
        f"retrain-request-{model}",
        rows
        | {"decision": f"dispatched to {settings.deployment}", "training run": started.name}
        | {f"parameter {k}": v for k, v in parameters.items()},
        "Retrain request",
    )
    return Completed(
        name="Dispatched",
        message=f"{settings.deployment}: flow run {started.name}",
        data={"status": "dispatched", "retrain_id": retrain_id, "parameters": parameters} | dispatched,
    )


# --- the example trainer -----------------------------------------------------------------------


def promotion_effective_from(results_engine: Engine, model: str, as_of: datetime | None) -> datetime | None:
    """When a promotion takes effect: triggered by a window, the hour after it — or, if later hours
    were judged meanwhile, the end of the latest one, so no stored verdict changes on a rerun; run
    by hand, ``None`` (now, the promotion time)."""
    if as_of is None:
        return None
    latest = latest_window_end(results_engine, model)
    return as_of if latest is None else max(as_of, latest)


def _trainer_name(model: str) -> str:
    return f"retrain-{model}"


@flow(name="retrain", flow_run_name="retrain-{model}")
def retrain(
    model: str,
    reason: str = "",
    trigger_kind: str | None = None,
    trigger_status: str | None = None,
    # Strings, not datetimes: automations render them from the event as text.
    window_start: str | None = None,
    window_end: str | None = None,
    training_start: str | None = None,
    training_end: str | None = None,
    raised_by_flow_run: str | None = None,
    retrain_run_id: int | None = None,
    config_path: str | None = None,
    require_approval: bool | None = None,
    cooldown_hours: float | None = None,
    lookback_hours: int | None = None,
    approval_timeout_s: int = 86_400,
) -> State:
    """Train a candidate on the suggested range; promote it only if it beats the incumbent (and a
    person approved it). The first ten parameters are the documented set every training deployment
    gets from ``retrain-request``; the rest are this trainer's own (a run by hand)."""
    logger = get_run_logger()
    since, as_of = _utc(window_start), _utc(window_end)  # a bad value fails here, before anything is claimed
    train_from, train_to = _utc(training_start), _utc(training_end)
    if since is not None and as_of is not None and since >= as_of:
        since = None  # not a window: train up to its end, keep the training range as reference
    config = load_run_config(config_path)
    model_config = config.model(model)
    settings = retrain_settings(model_config)
    databases = open_databases(config)
    run_id = str(flow_run.id) if flow_run.id else None
    name = _trainer_name(model)
    rows: dict[str, Any] = {"model": model, "reason": reason, "window": f"{window_start} .. {window_end}"}
    before = resolve_reference(databases.results, model_config, None)
    rows["reference before"] = f"version {before.version}: {before.start.isoformat()} .. {before.end.isoformat()}"

    def finish(status: str, state_name: str, message: str, details: dict[str, Any]) -> State:
        update_retrain(databases.results, retrain_id, status, details)
        name_run(f"{name}: {state_name.lower()}")
        outcome_artifact(f"retrain-{model}", {"decision": state_name.lower(), "why": message} | rows, "Retrain")
        return Completed(name=state_name, message=message, data=details | {"status": status, "retrain_id": retrain_id})

    if retrain_run_id is not None and retrain_run(databases.results, retrain_run_id) is not None:
        retrain_id = retrain_run_id  # retrain-request applied the cooldown and recorded the request
        update_retrain(databases.results, retrain_id, None, {"trainer_flow_run_id": run_id})
    else:
        cooldown = settings.cooldown_hours if cooldown_hours is None else cooldown_hours
        retrain_id, previous = claim_retrain(databases.results, model, reason, run_id, cooldown)
        if previous is not None:
            message = f"retrained at {previous.isoformat()}, within the {cooldown}h cooldown"
            logger.info("%s: %s: skipped", model, message)
            name_run(f"{name}: skipped (cooldown)")
            outcome_artifact(f"retrain-{model}", {"decision": "skipped: cooldown", "why": message} | rows, "Retrain")
            return Completed(
                name="Skipped: cooldown",
                message=message,
                data={"status": "skipped", "retrain_id": retrain_id, "previous_start": previous.isoformat()},
            )
    outcome: dict[str, Any] = {"model": model, "reason": reason, "retrain_id": retrain_id}
    try:
        data: TrainingData = training_rows_task(
            databases.data,
            model_config,
            lookback_hours or settings.lookback_hours,
            settings.holdout_fraction,
            train_to or as_of,
            train_from if lookback_hours is None else None,
        )
        holdout_rows = len(data.frame) - data.split_at
        holdout_from, holdout_to = data.holdout_range(model_config)
        outcome |= {"rows": len(data.frame), "train_start": data.start.isoformat(), "train_end": data.end.isoformat()}
        rows |= {
            "training data": f"{data.start.isoformat()} .. {data.end.isoformat()} ({data.split_at} rows)",
            "holdout": f"{holdout_from} .. {holdout_to} ({holdout_rows} rows)",
        }
        if len(data.frame) < settings.min_rows or holdout_rows < 10 or data.frame["__y__"].nunique() < 2:
            why = f"not enough labelled rows ({len(data.frame)}; actions.retrain.min_rows={settings.min_rows})"
            logger.warning("%s: %s", model, why)
            return finish("rejected", "Rejected", why, outcome | {"why": why})
        candidate = train_candidate_task(data, model_config)
        comparison = compare_task(candidate, data, model_config, latest_model_version(databases.results, model))
        improvement = comparison.improvement()
        outcome |= {
            "metric": comparison.metric,
            "scores": comparison.scores,
            "baseline": comparison.baseline_source,
            "improvement": improvement,
        }
        rows |= {f"holdout {comparison.metric}: {k}": f"{v:.4f}" for k, v in comparison.scores.items()}
        rows["incumbent"] = comparison.baseline_source
        logger.info("%s: holdout %s %s", model, comparison.metric, comparison.scores)
        if improvement is not None and improvement <= settings.min_improvement:
            why = (
                f"the candidate does not beat the incumbent ({comparison.baseline_source}) by more than "
                f"min_improvement={settings.min_improvement}"
            )
            return finish("rejected", "Rejected", why, outcome | {"why": why})
        new_reference = (since, as_of) if since is not None and as_of is not None else (data.start, data.end)
        reference_text = f"{new_reference[0].isoformat()} .. {new_reference[1].isoformat()}"
        approved = False
        if settings.approval_required if require_approval is None else require_approval:
            description = approval_request(model_config, data, comparison, reference_text)
            logger.info(
                "%s: waiting for approval (resume this flow run with approve=true/false)\n%s", model, description
            )
            name_run(f"{name}: awaiting approval")
            update_retrain(databases.results, retrain_id, None, {"phase": "awaiting approval"} | outcome)
            outcome_artifact(f"retrain-{model}", {"decision": "awaiting approval"} | rows, "Retrain")
            from prefect.flow_runs import pause_flow_run

            try:
                answer = pause_flow_run(
                    wait_for_input=RetrainApproval.with_initial_data(description=description, approve=False),
                    timeout=approval_timeout_s,
                    poll_interval=1,
                )
            except Exception as exc:  # timed out: nobody approved
                answer = RetrainApproval(approve=False, note=f"no answer: {type(exc).__name__}")
            outcome["approval"] = {"approve": answer.approve, "note": answer.note}
            rows["approval"] = f"{'approved' if answer.approve else 'not approved'}: {answer.note}"
            approved = answer.approve
            if not answer.approve:
                return finish("rejected", "Rejected", f"not approved: {answer.note}", outcome | {"why": "not approved"})
        effective_from = promotion_effective_from(databases.results, model, as_of)
        with databases.results.begin() as connection:
            version_id, version = record_candidate(
                connection, model_config, candidate, data, comparison, reason, run_id
            )
            note = f"retrain: model version {version}" + (f"; approved: {answer.note}" if approved else "")
            promoted_by = f"flow run {flow_run.name or run_id}" if run_id else "retrain"
            try:  # the new data as reference, if it holds enough rows to judge windows against
                promoted = promote_reference(
                    connection,
                    model_config=model_config,
                    version=version,
                    reference_start=new_reference[0],
                    reference_end=new_reference[1],
                    effective_from=effective_from,
                    note=note,
                    promoted_by=promoted_by,
                    model_version_id=version_id,
                    source="retrain",
                    data_engine=databases.data,
                )
            except ReferenceTooSmallError as exc:  # else a warm-up on the new model's own traffic
                logger.info("%s: %s; the reference is a warm-up instead", model, exc)
                rows["reference asked"] = f"{reference_text}: too small, warm-up instead"
                promoted = promote_reference(
                    connection,
                    model_config=model_config,
                    version=version,
                    effective_from=effective_from,
                    note=note,
                    promoted_by=promoted_by,
                    model_version_id=version_id,
                    source="retrain",
                )
            reference_text = f"{promoted.start.isoformat()} .. {promoted.end.isoformat()}" + (
                " (warm-up)" if promoted.warmup else ""
            )
        payload = promoted_payload(
            promoted, {"retrain_run_id": retrain_id, "model_version_id": version_id, "scores": comparison.scores}
        )
        outcome |= {
            "version": version,
            "model_version_id": version_id,
            "reference_version": promoted.version,
            "effective_from": payload["effective_from"],
            "reference_start": promoted.start.isoformat(),
            "reference_end": promoted.end.isoformat(),
            "warmup": promoted.warmup,
            "events": emit_promoted(databases.results, model, payload),
        }
        rows |= {
            "model version": version,
            "reference after": f"version {promoted.version}: {reference_text}",
            "effective from": payload["effective_from"],
        }
        logger.info(
            "%s: promoted model version %s; reference version %s (%s), effective from %s",
            model,
            version,
            promoted.version,
            reference_text,
            payload["effective_from"],
        )
        return finish("promoted", "Promoted", f"model version {version}, reference version {promoted.version}", outcome)
    except Exception as exc:
        update_retrain(databases.results, retrain_id, "failed", outcome | {"error": f"{type(exc).__name__}: {exc}"})
        name_run(f"{name}: failed")
        raise
