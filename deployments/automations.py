"""Prefect automations declared from monitors.yaml, applied idempotently (create or update by name).

Per model, only if its ``actions`` asks (nothing is automated by default):

* ``driftline-<model>-retrain-on-<kind>`` (``actions.retrain``) — event ``driftline.<kind>...`` of that
  model at the configured status → RunDeployment ``retrain-request/retrain-request`` with the model,
  reason, kind, status, window and monitor run of the event; that flow applies the cooldown and runs
  ``actions.retrain.deployment`` (the team's training pipeline) with the documented parameters;
* ``driftline-<model>-promote-on-request`` (``actions.retrain``) — ``driftline.promotion.requested``
  of that model (emitted by a team's pipeline) → RunDeployment ``promote/promote``;
* ``driftline-<model>-cicd-on-promoted`` / ``-cicd-on-<kind>`` — CallWebhook of a ``Webhook`` block
  ``driftline-cicd-<model>`` (its URL from the config, an environment variable or a Secret block).

Globally (top-level ``notifications.on_monitor_failure``, default on):

* ``driftline-monitor-failed`` — a monitor flow run (monitor-model, monitor-all, backfill) Failed or
  Crashed → CallWebhook (the ``notifications.webhook`` channel) and SendNotification to Slack
  (``notifications.slack``, through a Custom Webhook block that posts ``chat.postMessage``).

Every automation carries the tag ``driftline``; one with that tag and a ``driftline-`` name that is
no longer declared is deleted, so re-applying after editing monitors.yaml converges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from driftline.config.notifications import DEFAULT_ACTIONS, CicdWebhookAction, NotificationsConfig, SlackChannel
from driftline.core.errors import DriftlineError
from driftline.core.results import Kind
from driftline.deployments.declared import declared
from driftline.tasks.events import EVENT_NAMES, RETRAIN_PROMOTED, model_resource_id
from driftline.tasks.notify_channels import read_secret, webhook_url
from driftline.tasks.promotion import PROMOTION_REQUESTED

TAG = "driftline"
PREFIX = "driftline-"
MONITOR_FLOWS = ["monitor-model", "monitor-all", "backfill"]
FAILED_AUTOMATION = "driftline-monitor-failed"


def _levels(min_status: str) -> list[str]:
    return ["alert"] if min_status == "alert" else ["warning", "alert"]


def _model_trigger(model: str, event: str, statuses: list[str] | None) -> Any:
    from prefect.events.schemas.automations import EventTrigger, Posture

    match: dict[str, Any] = {"prefect.resource.id": model_resource_id(model)}
    if statuses is not None:
        match["driftline.status"] = statuses
    return EventTrigger(expect={event}, match=match, posture=Posture.Reactive, threshold=1, within=timedelta(0))


def _cicd_payload(model: str) -> str:
    return json.dumps(
        {
            "source": "driftline",
            "model": model,
            "event": "{{ event.event }}",
            "event_id": "{{ event.id }}",
            "occurred": "{{ event.occurred }}",
            "window_start": "{{ event.payload.window_start }}",
            "status": "{{ event.payload.status }}",
            "version": "{{ event.payload.version }}",
        }
    )


def _save_webhook_block(name: str, url: str) -> UUID:
    from prefect.blocks.webhook import Webhook

    return Webhook(method="POST", url=url).save(name, overwrite=True)  # type: ignore[arg-type]


def _save_slack_failure_block(name: str, slack: SlackChannel) -> UUID:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    token = read_secret(slack.token_secret, slack.token_env, "slack token")
    base = slack.base_url if slack.base_url.endswith("/") else slack.base_url + "/"
    block = CustomWebhookNotificationBlock(
        name=name,
        url=base + "chat.postMessage",
        json_data={"channel": slack.channel, "text": ":rotating_light: {{subject}}: {{body}}"},
        headers={"Authorization": "Bearer {{token}}", "Content-Type": "application/json; charset=utf-8"},
        secrets={"token": token},  # type: ignore[arg-type]
    )
    return block.save(name, overwrite=True)


def desired_automations(config: Any, deployment_id: Callable[[str], UUID]) -> list[Any]:
    """The automations ``config`` asks for (Prefect ``AutomationCore`` objects), blocks saved on the way."""
    from prefect.events.actions import CallWebhook, RunDeployment
    from prefect.events.schemas.automations import AutomationCore

    wanted: list[Any] = []
    for model in config.models:
        actions = getattr(model, "actions", None) or DEFAULT_ACTIONS
        retrain = actions.retrain
        if retrain is not None and retrain.enabled:
            deployment_id(retrain.deployment)  # the training pipeline must exist: a clear error now, not at drift
            request = deployment_id(declared("retrain-request").full_name)
            for kind in retrain.on:
                wanted.append(
                    AutomationCore(
                        name=f"{PREFIX}{model.name}-retrain-on-{Kind(kind).value}",
                        description=f"Ask {retrain.deployment} to retrain {model.name} when {Kind(kind).value} "
                        f"reaches {retrain.min_status}.",
                        tags=[TAG],
                        trigger=_model_trigger(model.name, EVENT_NAMES[Kind(kind)], _levels(retrain.min_status)),
                        actions=[
                            RunDeployment(
                                source="selected",
                                deployment_id=request,
                                parameters={
                                    "model": model.name,
                                    "reason": "{{ event.event }} ({{ event.payload.status }}) in the window from "
                                    "{{ event.payload.window_start }}",
                                    "trigger_kind": "{{ event.payload.kind }}",
                                    "trigger_status": "{{ event.payload.status }}",
                                    "window_start": "{{ event.payload.window_start }}",
                                    "window_end": "{{ event.payload.window_end }}",
                                    "raised_by_flow_run": "{{ event.payload.flow_run_id }}",
                                },
                            )
                        ],
                    )
                )
            wanted.append(
                AutomationCore(
                    name=f"{PREFIX}{model.name}-promote-on-request",
                    description=f"Promote a {model.name} version when its pipeline emits {PROMOTION_REQUESTED}.",
                    tags=[TAG],
                    trigger=_model_trigger(model.name, PROMOTION_REQUESTED, None),
                    actions=[
                        RunDeployment(
                            source="selected",
                            deployment_id=deployment_id(declared("promote").full_name),
                            parameters={
                                "model": model.name,
                                "version": "{{ event.payload.version }}",
                                "reference_start": "{{ event.payload.reference_start }}",
                                "reference_end": "{{ event.payload.reference_end }}",
                                "effective_from": "{{ event.payload.effective_from }}",
                                "note": "{{ event.payload.note }}",
                                "promoted_by": "{{ event.payload.promoted_by }}",
                                "retrain_run_id": "{{ event.payload.retrain_run_id }}",
                                "source": "event",
                            },
                        )
                    ],
                )
            )
        cicd: CicdWebhookAction | None = actions.cicd_webhook
        if cicd is not None:
            block_id = _save_webhook_block(f"driftline-cicd-{model.name}", webhook_url(cicd))
            for trigger_on in cicd.on:
                if trigger_on == "retrain_promoted":
                    suffix, trigger = "promoted", _model_trigger(model.name, RETRAIN_PROMOTED, None)
                else:
                    kind = Kind(trigger_on)
                    suffix = kind.value
                    trigger = _model_trigger(model.name, EVENT_NAMES[kind], _levels(cicd.min_status))
                wanted.append(
                    AutomationCore(
                        name=f"{PREFIX}{model.name}-cicd-on-{suffix}",
                        description=f"Call the CI/CD webhook of {model.name} on {suffix}.",
                        tags=[TAG],
                        trigger=trigger,
                        actions=[CallWebhook(block_document_id=block_id, payload=_cicd_payload(model.name))],
                    )
                )
    failure = _failure_automation(config)
    if failure is not None:
        wanted.append(failure)
    return wanted


def _failure_automation(config: Any) -> Any | None:
    """``driftline-monitor-failed`` whenever any Slack or webhook channel is configured (top level or a
    model's): a failed or crashed monitor run is posted to each of them. ``None`` when there is none,
    or when the top-level ``notifications.on_monitor_failure`` is false."""
    from prefect.events.actions import CallWebhook, SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    from driftline.tasks.notify import configured_channels

    defaults: NotificationsConfig | None = getattr(config, "notifications", None)
    if defaults is not None and not (defaults.enabled and defaults.on_monitor_failure):
        return None
    failure_actions: list[Any] = []
    webhooks = [c for channel, _, c in configured_channels(config) if channel == "webhook"]
    slacks = [c for channel, _, c in configured_channels(config) if channel == "slack"]
    for index, webhook in enumerate(webhooks):
        name = "driftline-failure-webhook" + (f"-{index + 1}" if index else "")
        failure_actions.append(
            CallWebhook(
                block_document_id=_save_webhook_block(name, webhook_url(webhook)),
                payload=json.dumps(
                    {
                        "source": "driftline",
                        "transition": "monitor_failed",
                        "flow": "{{ flow.name }}",
                        "flow_run": "{{ flow_run.name }}",
                        "flow_run_id": "{{ flow_run.id }}",
                        "state": "{{ flow_run.state.name }}",
                        "message": "{{ flow_run.state.message }}",
                    }
                ),
            )
        )
    for index, slack in enumerate(slacks):
        name = "driftline-failure-slack" + (f"-{index + 1}" if index else "")
        failure_actions.append(
            SendNotification(
                block_document_id=_save_slack_failure_block(name, slack),
                subject="Driftline monitor run failed",
                body="{{ flow.name }}/{{ flow_run.name }} is {{ flow_run.state.name }}: {{ flow_run.state.message }}",
            )
        )
    if not failure_actions:
        return None
    return AutomationCore(
        name=FAILED_AUTOMATION,
        description="A Driftline monitor flow run failed or crashed.",
        tags=[TAG],
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": MONITOR_FLOWS},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=failure_actions,
    )


def apply_automations(config: Any, prune: bool = True) -> dict[str, list[str]]:
    """Create or update (by name) every automation ``config`` declares; delete stale Driftline ones.

    Needs the deployments the actions run (``retrain/retrain``) to exist on the server: deploy first.
    Returns ``{"created": [...], "updated": [...], "deleted": [...]}`` (names).
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    outcome: dict[str, list[str]] = {"created": [], "updated": [], "deleted": []}
    with get_client(sync_client=True) as client:
        cache: dict[str, UUID] = {}

        def deployment_id(name: str) -> UUID:
            if name not in cache:
                try:
                    cache[name] = client.read_deployment_by_name(name).id
                except ObjectNotFound:
                    raise DriftlineError(
                        f"deployment {name!r} does not exist on the Prefect server; deploy it first "
                        "(driftline deploy, or serve it)"
                    ) from None
            return cache[name]

        wanted = desired_automations(config, deployment_id)
        names = {a.name for a in wanted}
        for automation in wanted:
            existing = client.read_automations_by_name(automation.name)
            if existing:
                client.update_automation(existing[0].id, automation)
                for duplicate in existing[1:]:
                    client.delete_automation(duplicate.id)
                outcome["updated"].append(automation.name)
            else:
                client.create_automation(automation)
                outcome["created"].append(automation.name)
        if prune:
            for automation in client.read_automations():
                if automation.name.startswith(PREFIX) and TAG in automation.tags and automation.name not in names:
                    client.delete_automation(automation.id)
                    outcome["deleted"].append(automation.name)
    return outcome
