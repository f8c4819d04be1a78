"""React to a persisted window: Prefect events, then notifications through an outbox.

The flow persists the window's results first (their own transaction). ``react`` then

1. emits one Prefect event per kind in warning/alert (kept in the outbox if the API is down);
2. ``plan_notifications``: from the stored open incidents, decides per (model, kind) whether this
   window starts a problem, escalates it, is due a reminder (at most every ``reminder_hours``), or
   resolves it; the incident changes and the outbox rows are one transaction;
3. ``deliver_outbox``: sends this model's pending messages (including older ones that failed),
   one row at a time under ``FOR UPDATE SKIP LOCKED``, marking each delivered in the same
   transaction that locked it. A failure leaves the row pending with ``attempts`` and a
   secret-free ``last_error``; a later run sends it.

``react`` never raises: a notification problem never fails the window or loses a result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prefect import task
from sqlalchemy.engine import Engine

from driftline.config import ModelConfig
from driftline.notifications_config import NotificationsConfig, effective_notifications
from driftline.results import STATUS_SEVERITY, Kind, Result, Status, worst
from driftline.tasks._prefect import PURE
from driftline.tasks.estimation import reacting
from driftline.tasks.events import build_window_events, emit_events, worst_metrics
from driftline.tasks.notify_channels import (
    NotificationError,
    Redactor,
    Sender,
    email_sender,
    event_sender,
    slack_sender,
    webhook_sender,
)
from driftline.tasks.notify_store import (
    claim_next,
    insert_messages,
    lock_model,
    mark_attempt_failed,
    mark_delivered,
    open_incident,
    open_incidents,
    update_incident,
)
from driftline.window import Window

logger = logging.getLogger("driftline.notify")
DEFAULT_MAX_ATTEMPTS = 10
#: A Prefect event older than this is not sent any more: a retrain for last week's drift is worse than none.
EVENT_TTL = timedelta(hours=6)


def _logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a flow or task run
        return logger


def _links(
    config: NotificationsConfig, model: str, kind: str, window: Window, flow_run_id: str | None
) -> dict[str, Any]:
    ui = config.prefect_ui_url
    if ui is None:
        try:
            from prefect.settings import PREFECT_UI_URL

            ui = PREFECT_UI_URL.value()
        except Exception:
            ui = None
    flow_run_url = f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui and flow_run_id else None
    report_url = None
    if config.report_url:
        report_url = config.report_url.format(
            model=model, kind=kind, window_start=window.start.isoformat(), window_end=window.end.isoformat()
        )
    return {"flow_run_url": flow_run_url, "report_url": report_url}


def _transition(
    status: Status, incident: dict[str, Any] | None, config: NotificationsConfig, window: Window, now: datetime
) -> str | None:
    """``problem``, ``escalated``, ``reminder``, ``resolved`` or None (nothing to say)."""
    threshold = STATUS_SEVERITY[Status(config.min_status)]
    is_problem = STATUS_SEVERITY[status] >= threshold
    if incident is None:
        return "problem" if is_problem else None
    if window.start < incident["last_window_start"]:
        return None  # an older window (backfill, late labels): the incident follows the newest one
    if is_problem:
        if STATUS_SEVERITY[status] > STATUS_SEVERITY[Status(incident["severity"])]:
            return "escalated"
        last = incident["last_notified_at"]
        if config.reminder_hours > 0 and (last is None or (now - last).total_seconds() >= config.reminder_hours * 3600):
            return "reminder"
        return None
    if status == Status.UNKNOWN:
        return None  # no evidence either way: keep the incident open
    return "resolved"


def plan_notifications(
    engine: Engine,
    model: str,
    window: Window,
    results: list[Result],
    config: NotificationsConfig | None,
    flow_run_id: str | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Update open incidents from this window and queue the messages it calls for (one transaction).

    Returns one entry per transition: ``{"kind", "transition", "status", "incident_id", "message_ids"}``.
    Kinds without results in this window are left as they are.
    """
    if config is None or not config.enabled:
        return []
    now = now or datetime.now(UTC)
    by_kind: dict[str, list[Result]] = {}
    for result in results:
        if Kind(result.kind) in config.kinds:
            by_kind.setdefault(str(result.kind), []).append(result)
    planned: list[dict[str, Any]] = []
    with engine.begin() as connection:
        lock_model(connection, model)
        current = open_incidents(connection, model)
        for kind in sorted(by_kind):
            rows = by_kind[kind]
            status = worst([r.status for r in rows])
            incident = current.get(kind)
            transition = _transition(status, incident, config, window, now)
            if transition is None:
                if incident is not None and window.start >= incident["last_window_start"] and status != Status.UNKNOWN:
                    update_incident(connection, incident["id"], last_window_start=window.start)
                continue
            if transition == "problem":
                incident_id = open_incident(connection, model, kind, str(status), window.start, now)
                opened = window.start
            else:
                assert incident is not None
                incident_id, opened = incident["id"], incident["opened_window_start"]
                if transition == "resolved":
                    update_incident(connection, incident_id, state="resolved", resolved_window_start=window.start,
                                    resolved_at=now, last_window_start=window.start)
                elif transition == "escalated":
                    update_incident(connection, incident_id, severity=str(status), last_window_start=window.start,
                                    last_notified_at=now)
                else:
                    update_incident(connection, incident_id, last_window_start=window.start, last_notified_at=now,
                                    reminders=incident["reminders"] + 1)
            message_ids: list[int] = []
            if transition != "resolved" or config.notify_resolved:
                payload = {
                    "model": model,
                    "kind": kind,
                    "transition": transition,
                    "status": str(status),
                    "window_start": window.start.isoformat(),
                    "window_end": window.end.isoformat(),
                    "worst": worst_metrics(rows),
                    "flow_run_id": flow_run_id,
                    "incident_id": incident_id,
                    "incident_opened_window_start": opened.isoformat(),
                    **_links(config, model, kind, window, flow_run_id),
                }
                message_ids = insert_messages(
                    connection,
                    [
                        {
                            "dedupe_key": "|".join(
                                [model, kind, window.start.isoformat(), transition, channel, str(incident_id)]
                            ),
                            "model": model,
                            "kind": kind,
                            "window_start": window.start,
                            "transition": transition,
                            "channel": channel,
                            "payload": payload,
                            "incident_id": incident_id,
                        }
                        for channel in config.channels()
                    ],
                )
            planned.append({"kind": kind, "transition": transition, "status": str(status),
                            "incident_id": incident_id, "message_ids": message_ids})
    return planned


class _Senders:
    """Senders built on first use per (model, channel); secrets read once per delivery pass."""

    def __init__(self, configs: Mapping[str, NotificationsConfig | None]) -> None:
        self.configs = configs
        self.redactor = Redactor()
        self._cache: dict[tuple[str, str], Sender] = {}

    def get(self, model: str, channel: str) -> Sender:
        if channel == "event":
            return event_sender
        key = (model, channel)
        if key not in self._cache:
            config = self.configs.get(model)
            channel_config = getattr(config, channel, None) if config is not None else None
            if channel_config is None:
                raise NotificationError(f"channel {channel!r} is not configured for model {model!r}")
            factory = {"slack": slack_sender, "email": email_sender, "webhook": webhook_sender}[channel]
            self._cache[key] = factory(channel_config, self.redactor)
        return self._cache[key]


def deliver_outbox(
    engine: Engine,
    configs: Mapping[str, NotificationsConfig | None],
    model: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Send due pending messages (of ``model``, or of every model in ``configs``), each at most once.

    ``configs`` maps model name to its effective notification settings (where channels and
    secrets come from). Returns counts and the (secret-free) errors.
    """
    senders = _Senders(configs)
    outcome: dict[str, Any] = {"delivered": 0, "retry_later": 0, "gave_up": 0, "errors": []}
    models = [model] if model is not None else list(configs)
    for name in models:
        config = configs.get(name)
        max_attempts = config.max_attempts if config is not None else DEFAULT_MAX_ATTEMPTS
        for _ in range(limit):
            with engine.begin() as connection:
                message = claim_next(connection, now, name)
                if message is None:
                    break
                try:
                    if message["channel"] == "event" and datetime.now(UTC) - message["created_at"] > EVENT_TTL:
                        mark_attempt_failed(connection, message, "expired: older than the event TTL", now, 0)
                        outcome["gave_up"] += 1
                        continue
                    senders.get(name, message["channel"])(message["payload"])
                except Exception as exc:
                    error = senders.redactor.scrub(str(exc) if isinstance(exc, NotificationError)
                                                   else f"{type(exc).__name__}: {exc}")
                    status = mark_attempt_failed(connection, message, error, now, max_attempts)
                    outcome["gave_up" if status == "failed" else "retry_later"] += 1
                    outcome["errors"].append(f"{message['channel']} #{message['id']}: {error}")
                else:
                    mark_delivered(connection, message["id"])
                    outcome["delivered"] += 1
    with engine.connect() as connection:
        pending = sa.text("SELECT count(*) FROM driftline.outbox WHERE status = 'pending'"
                          + (" AND model = :model" if model is not None else ""))
        outcome["pending"] = int(connection.execute(pending, {"model": model}).scalar_one())
    return outcome


def notification_configs(config: Any) -> dict[str, NotificationsConfig | None]:
    """Effective notification settings of every model of a MonitorsConfig (top-level defaults + overrides)."""
    defaults = getattr(config, "notifications", None)
    return {m.name: effective_notifications(defaults, getattr(m, "notifications", None)) for m in config.models}


def react(
    databases: Any,
    model_config: ModelConfig,
    window: Window,
    results: list[Result],
    flow_run_id: str | None = None,
    *,
    defaults: NotificationsConfig | None = None,
    notifications: NotificationsConfig | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Events, incident transitions and deliveries for a persisted window; never raises.

    ``notifications`` (explicit) wins; else the model's ``notifications`` over the top-level
    ``defaults``. Returns ``{"events", "events_queued", "planned", "delivery", "errors"}``.
    """
    log = _logger()
    engine: Engine = databases.results
    model = model_config.name
    report: dict[str, Any] = {"events": [], "events_queued": [], "planned": [], "delivery": {}, "errors": []}
    config = notifications or effective_notifications(defaults, getattr(model_config, "notifications", None))
    # Estimated (not yet realised) degradation reacts only where performance.estimation.react says so.
    results = reacting(model_config, results)
    try:
        sent, queued = emit_events(build_window_events(model, window, results, flow_run_id), engine, model)
        report["events"], report["events_queued"] = sent, queued
    except Exception as exc:  # e.g. the outbox itself unreachable: visible, not fatal
        report["errors"].append(f"events: {type(exc).__name__}: {exc}"[:500])
    try:
        report["planned"] = plan_notifications(engine, model, window, results, config, flow_run_id, now)
    except Exception as exc:
        report["errors"].append(f"plan: {type(exc).__name__}: {exc}"[:500])
    try:
        report["delivery"] = deliver_outbox(engine, {model: config}, model=model)
        report["errors"] += report["delivery"]["errors"]
    except Exception as exc:
        report["errors"].append(f"deliver: {type(exc).__name__}: {exc}"[:500])
    if report["errors"]:
        log.warning("react %s %s: %d problem(s): %s", model, window.label(), len(report["errors"]),
                    "; ".join(report["errors"])[:2000])
    transitions = [f"{p['kind']}:{p['transition']}" for p in report["planned"]]
    log.info("react %s %s: %d event(s), %d queued, transitions %s, delivered %s", model, window.label(),
             len(report["events"]), len(report["events_queued"]), transitions or "none",
             report["delivery"].get("delivered", 0))
    return report


react_task = task(react, name="react", **PURE)


def configured_channels(config: Any, model: str | None = None) -> list[tuple[str, str, Any]]:
    """Distinct channels of the config (or of one model), as (channel, first model using it, its settings).

    A channel is the same when its settings are: a top-level Slack channel that every model inherits
    is one channel, not one per model. Disabled notifications (``enabled: false``) have none.
    """
    seen: dict[tuple[str, str], tuple[str, str, Any]] = {}
    for name, settings in notification_configs(config).items():
        if (model is not None and name != model) or settings is None or not settings.enabled:
            continue
        for channel in settings.channels():
            channel_config = getattr(settings, channel)
            seen.setdefault((channel, channel_config.model_dump_json()), (channel, name, channel_config))
    return list(seen.values())


def send_test_messages(config: Any, model: str | None = None) -> list[dict[str, Any]]:
    """Send one test message through every configured channel (of ``model``, or of every model).

    Nothing is written to the outbox. Returns one row per channel: ``channel``, ``model``,
    ``target`` (a channel name, recipients or a URL's host; never a secret), ``delivered`` and a
    secret-free ``error``.
    """
    redactor = Redactor()
    factories = {"slack": slack_sender, "email": email_sender, "webhook": webhook_sender}
    deliveries = []
    for channel, name, channel_config in configured_channels(config, model):
        payload = {
            "model": name,
            "kind": None,
            "status": "test",
            "transition": "test",
            "window_start": "",
            "window_end": "",
            "worst": [],
            "sent_at": datetime.now(UTC).isoformat(),
        }
        delivery: dict[str, Any] = {"channel": channel, "model": name, "target": _target(channel, channel_config)}
        try:
            factories[channel](channel_config, redactor)(payload)
        except Exception as exc:  # a missing secret, an unreachable server: reported, never raised
            text = str(exc) if isinstance(exc, NotificationError) else f"{type(exc).__name__}: {exc}"
            delivery |= {"delivered": False, "error": redactor.scrub(text)}
        else:
            delivery |= {"delivered": True, "error": None}
        deliveries.append(delivery)
    return deliveries


def _target(channel: str, channel_config: Any) -> str:
    if channel == "slack":
        return f"{channel_config.channel} via {Redactor().scrub(channel_config.base_url)}"
    if channel == "email":
        return f"{', '.join(channel_config.to)} via {channel_config.host}:{channel_config.port}"
    if channel_config.url:
        return Redactor().scrub(str(channel_config.url))
    source = f"secret {channel_config.url_secret}" if channel_config.url_secret else f"${channel_config.url_env}"
    return f"the URL in {source}"


def channel_warnings(config: Any) -> list[str]:
    """What ``up``/``deploy`` must say out loud: who hears about a failed hourly run (maybe nobody)."""
    channels = configured_channels(config)
    if not channels:
        return [
            "no notification channel is configured (notifications.slack / email / webhook): alerts and failed "
            "hourly runs reach nobody; they are only visible in the Prefect UI. Test one with `driftline notify test`."
        ]
    warnings = []
    kinds = {channel for channel, _, _ in channels}
    if not kinds & {"slack", "webhook"}:
        warnings.append(
            "only e-mail is configured: alerts are mailed, but a failed or crashed hourly run is reported by a "
            "Prefect automation that speaks Slack and webhooks only; add notifications.slack or webhook for those."
        )
    defaults = getattr(config, "notifications", None)
    if defaults is not None and not defaults.on_monitor_failure:
        warnings.append("notifications.on_monitor_failure is false: a failed hourly run notifies nobody.")
    return warnings
