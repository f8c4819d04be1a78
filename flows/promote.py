"""The promotion step as a flow (deployment ``promote/promote``), so every promotion is a run in the
Prefect UI with a named outcome: ``driftline promote`` runs it where you are, and the model's
``promote-on-request`` automation runs the deployment when a team's pipeline emits
``driftline.promotion.requested``.

It ends ``Promoted`` (run name ``promote-<model>-<version>: promoted``) or ``Refused`` (a Failed
state: a reference smaller than ``reference.min_rows``, a half-given or reversed range, an unknown
retrain request), and leaves a table artifact ``promotion-<model>`` with the versions and ranges.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed, State

from driftline.core.errors import DriftlineError
from driftline.flows.retrain import name_run, outcome_artifact
from driftline.storage.connections import load_run_config, open_databases
from driftline.tasks.promotion import promote_model, text_or_none


@flow(name="promote", flow_run_name="promote-{model}-{version}")
def promote(
    model: str,
    version: str,
    reference_start: str | None = None,
    reference_end: str | None = None,
    effective_from: str | None = None,
    note: str | None = None,
    promoted_by: str | None = None,
    retrain_run_id: str | None = None,
    config_path: str | None = None,
    source: str = "promotion",
) -> State:
    """Promote ``version`` of ``model`` (``tasks.promotion.promote_model``). Instants are ISO 8601
    strings; '' or 'None' (an absent value rendered by an automation's template) mean not given."""
    logger = get_run_logger()
    name = f"promote-{model}-{version}"
    config = load_run_config(config_path)
    model_config = config.model(model)
    databases = open_databases(config)
    request = text_or_none(retrain_run_id)
    asked: dict[str, Any] = {
        "model": model,
        "model version": version,
        "reference asked": f"{text_or_none(reference_start)} .. {text_or_none(reference_end)}",
        "effective from (asked)": text_or_none(effective_from) or "now",
        "note": text_or_none(note),
        "promoted by": text_or_none(promoted_by),
        "retrain run": request,
    }
    try:
        outcome = promote_model(
            databases.results,
            model_config,
            version=version,
            reference_start=text_or_none(reference_start),
            reference_end=text_or_none(reference_end),
            effective_from=text_or_none(effective_from),
            note=text_or_none(note),
            promoted_by=text_or_none(promoted_by),
            retrain_run_id=int(request) if request is not None else None,
            data_engine=databases.data,
            source=source,
        )
    except (DriftlineError, ValueError) as exc:
        logger.error("%s: promotion of %s refused: %s", model, version, exc)
        name_run(f"{name}: refused")
        outcome_artifact(f"promotion-{model}", {"decision": "refused", "why": str(exc)} | asked, "Promotion")
        return Failed(name="Refused", message=str(exc))
    before, after = outcome["previous_reference"], outcome["reference"]
    logger.info(
        "%s: promoted %s; reference version %s -> %s (%s .. %s%s), effective from %s",
        model,
        version,
        before["version"],
        after["version"],
        after["start"],
        after["end"],
        ", warm-up" if after["warmup"] else "",
        after["effective_from"],
    )
    name_run(f"{name}: promoted")
    outcome_artifact(
        f"promotion-{model}",
        {
            "decision": "promoted",
            "reference before": f"version {before['version']}: {before['start']} .. {before['end']}",
            "reference after": f"version {after['version']}: {after['start']} .. {after['end']}"
            + (" (warm-up: the new model's traffic)" if after["warmup"] else ""),
            "effective from": after["effective_from"],
        }
        | asked,
        "Promotion",
    )
    return Completed(name="Promoted", message=f"reference version {after['version']}", data=outcome)
