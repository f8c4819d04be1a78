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

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.config.notifications import NotificationsConfig, effective_notifications
from driftline.core.results import STATUS_SEVERITY, Kind, Result, Status, worst
from driftline.core.window import Window
from driftline.storage.outbox import (
    defer_after,
    insert_messages,
    lease_due,
    lock_model,
    mark_attempt_failed,
    mark_delivered,
    open_incident,
    open_incidents,
    pending_count,
    pending_events,
    release,
    update_incident,
)
from driftline.tasks._prefect import NO_RETRIES
from driftline.tasks.estimation import reacting
from driftline.tasks.events import build_window_events, emit_events, worst_metrics
from driftline.tasks.notify_channels import (
    IDEMPOTENCY_KEY,
    NotificationError,
    Redactor,
    Sender,
    email_sender,
    event_sender,
    slack_sender,
    webhook_sender,
)

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
        if window.start <= incident["last_window_start"]:
            return None  # a rerun of the incident's newest window: nothing has gone on failing since
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
                    update_incident(
                        connection,
                        incident_id,
                        state="resolved",
                        resolved_window_start=window.start,
                        resolved_at=now,
                        last_window_start=window.start,
                    )
                elif transition == "escalated":
                    update_incident(
                        connection,
                        incident_id,
                        severity=str(status),
                        last_window_start=window.start,
                        last_notified_at=now,
                    )
                else:
                    update_incident(
                        connection,
                        incident_id,
                        last_window_start=window.start,
                        last_notified_at=now,
                        reminders=incident["reminders"] + 1,
                    )
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
            planned.append(
                {
                    "kind": kind,
                    "transition": transition,
                    "status": str(status),
                    "incident_id": incident_id,
                    "message_ids": message_ids,
                }
            )
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


#: Messages sent at once by one delivery pass (a black-holed endpoint costs one timeout, not N).
DELIVERY_WORKERS = 4
#: One pass stops taking messages after this long; the rest stay due for the next run.
DELIVERY_BUDGET_S = 60.0
#: How long a taken message is reserved for its sender (longer than any channel's deadline).
LEASE_S = 300.0


def _idempotency_key(message: dict[str, Any]) -> str:
    """Stable across attempts at one message: derived from its dedupe key (model, kind, window,
    transition, channel, incident)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"driftline:{message['dedupe_key']}"))


def deliver_outbox(
    engine: Engine,
    configs: Mapping[str, NotificationsConfig | None],
    model: str | None = None,
    now: datetime | None = None,
    limit: int = 200,
    *,
    budget_s: float = DELIVERY_BUDGET_S,
    workers: int = DELIVERY_WORKERS,
    channels: list[str] | None = None,
) -> dict[str, Any]:
    """Send due pending messages (of ``model``, or of every model in ``configs``), ``workers`` at a time.

    Messages are taken with a lease (:func:`lease_due`), sent with no transaction or row lock open,
    then marked delivered or failed each in its own short transaction. The pass takes no new message
    after ``budget_s``; every channel has its own deadline (a webhook's ``timeout_s`` is total), so a
    pass lasts at most ``budget_s`` plus one deadline. ``configs`` maps model name to its effective
    notification settings. Returns counts and the (secret-free) errors.
    """
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    senders = _Senders(configs)
    outcome: dict[str, Any] = {"delivered": 0, "retry_later": 0, "gave_up": 0, "errors": [], "deferred": 0}
    guard = threading.Lock()
    deadline = time.monotonic() + budget_s

    def deliver_in_order(name: str, messages: list[dict[str, Any]], max_attempts: int) -> None:
        """One incident's messages on one channel, oldest first: a failure defers the later ones with
        it (without counting an attempt), so a receiver never sees "resolved" before "problem"."""
        for position, message in enumerate(messages):
            if not deliver_one(name, message, max_attempts):
                defer_after(engine, [m["id"] for m in messages[position + 1 :]], message["id"])
                return

    def deliver_one(name: str, message: dict[str, Any], max_attempts: int) -> bool:
        payload = {**message["payload"]}
        if message["channel"] != "event":
            payload[IDEMPOTENCY_KEY] = _idempotency_key(message)
        try:
            if message["channel"] == "event":
                result = deliver_event(payload, message["created_at"])
            else:
                with guard:
                    sender = senders.get(name, message["channel"])
                sender(payload)
                result = "delivered"
        except Exception as exc:
            error = senders.redactor.scrub(
                str(exc) if isinstance(exc, NotificationError) else f"{type(exc).__name__}: {exc}"
            )
            with engine.begin() as connection:
                status = mark_attempt_failed(
                    connection, message, error, now, max_attempts, getattr(exc, "retry_after_s", None)
                )
            with guard:
                outcome["gave_up" if status == "failed" else "retry_later"] += 1
                outcome["errors"].append(f"{message['channel']} #{message['id']}: {error}")
            return False
        with engine.begin() as connection:
            if result == "expired":
                mark_attempt_failed(connection, message, "expired: older than the event TTL", now, 0)
            else:
                mark_delivered(connection, message["id"])
        with guard:
            outcome["gave_up" if result == "expired" else "delivered"] += 1
        return True

    models = [model] if model is not None else list(configs)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="driftline-deliver")
    try:
        for name in models:
            config = configs.get(name)
            max_attempts = config.max_attempts if config is not None else DEFAULT_MAX_ATTEMPTS
            while time.monotonic() < deadline:
                taken = lease_due(engine, now, name, min(limit, workers * 4), LEASE_S, channels)
                if not taken:
                    break
                groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
                for message in taken:  # events are independent; an incident's messages keep their order
                    key = (message["channel"], message["incident_id"] or f"row-{message['id']}")
                    groups.setdefault(key, []).append(message)
                # Each job in a copy of this context: Prefect settings (its API URL) reach the senders.
                futures = {
                    pool.submit(contextvars.copy_context().run, deliver_in_order, name, group, max_attempts): group
                    for group in groups.values()
                }
                pending = set(futures)
                while pending and time.monotonic() < deadline:
                    _, pending = wait(pending, timeout=deadline - time.monotonic(), return_when=FIRST_COMPLETED)
                if pending:  # out of budget: unstarted messages are due again at once, started ones finish
                    unstarted = [m["id"] for f in pending if f.cancel() for m in futures[f]]
                    release(engine, unstarted, now)
                    outcome["deferred"] += len(unstarted)
                    break
                if len(taken) < min(limit, workers * 4):
                    break
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    outcome["pending"] = pending_count(engine, model)
    return outcome


def deliver_event(event: dict[str, Any], created_at: datetime) -> str:
    """A kept Prefect event: ``delivered`` once the API has stored it; else sent again (same id, so the
    API keeps one) and left pending until a later pass reads it back; ``expired`` past the TTL."""
    from driftline.tasks.events import stored_event_ids

    try:
        if stored_event_ids([event["id"]]):
            return "delivered"
    except Exception as exc:
        raise NotificationError(f"Prefect API unreachable: {type(exc).__name__}: {exc}"[:500]) from None
    if datetime.now(UTC) - created_at > EVENT_TTL:
        return "expired"
    event_sender(event)
    raise NotificationError("sent again; waiting for the Prefect API to store it")


def confirm_events(
    engine: Engine, wait_s: float = 20.0, poll_s: float = 1.0, ids: list[str] | None = None
) -> dict[str, int]:
    """At the end of a run: wait (at most ``wait_s``) for the Prefect API to store the events sent
    (``ids``, or every pending one), marking each delivered once it reads back; the rest stay
    pending, and a later delivery pass sends them again under the same id."""
    from driftline.tasks.events import stored_event_ids

    deadline = time.monotonic() + wait_s
    confirmed = 0
    waiting: dict[str, int] = {}
    stored: set[str] = set()
    while True:
        waiting = pending_events(engine, ids)
        if not waiting:
            break
        try:
            stored = stored_event_ids(list(waiting))
        except Exception:  # the API is gone: the next run confirms (or resends) them
            break
        with engine.begin() as connection:
            for event_id in stored:
                mark_delivered(connection, waiting[event_id])
        confirmed += len(stored)
        if len(stored) == len(waiting) or time.monotonic() + poll_s > deadline:
            break
        time.sleep(poll_s)
    return {"confirmed": confirmed, "unconfirmed": len(set(waiting) - stored)}


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
        log.warning(
            "react %s %s: %d problem(s): %s",
            model,
            window.label(),
            len(report["errors"]),
            "; ".join(report["errors"])[:2000],
        )
    transitions = [f"{p['kind']}:{p['transition']}" for p in report["planned"]]
    log.info(
        "react %s %s: %d event(s), %d queued, transitions %s, delivered %s",
        model,
        window.label(),
        len(report["events"]),
        len(report["events_queued"]),
        transitions or "none",
        report["delivery"].get("delivered", 0),
    )
    return report


react_task = task(react, name="react", **NO_RETRIES)


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


def confirm_run_events(engine: Engine, outcomes: list[dict[str, Any]], wait_s: float = 20.0) -> dict[str, int]:
    """:func:`confirm_events` for the events the windows in ``outcomes`` sent; never raises."""
    ids = [i for o in outcomes for i in ((o.get("notifications") or {}).get("events") or [])]
    if not ids:
        return {"confirmed": 0, "unconfirmed": 0}
    try:
        return confirm_events(engine, wait_s=wait_s, ids=ids)
    except Exception as exc:  # the outbox keeps them: the next delivery pass checks and resends
        _logger().warning("events not confirmed: %s", type(exc).__name__)
        return {"confirmed": 0, "unconfirmed": len(ids)}
