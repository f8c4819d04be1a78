"""Prefect events for a window's problems: what automations (retrain, CI/CD) react to.

One event per result kind whose worst status is ``warning`` or ``alert``:

==================  ==================================
kind                event
==================  ==================================
data_drift          ``driftline.data_drift.detected``
concept_drift       ``driftline.concept_drift.detected``
performance         ``driftline.performance.degraded``
data_quality        ``driftline.data_quality.failed``
operational         ``driftline.operational.degraded``
==================  ==================================

The resource is ``{"prefect.resource.id": "driftline.model.<model>", "driftline.model": <model>,
"driftline.kind": <kind>, "driftline.status": <status>}`` so a trigger can match a model, a kind and a
status on labels alone. Events are sent synchronously and confirmed (not fire-and-forget like
``emit_event``), so a failure is known: the event is then kept in the outbox and sent again later.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from driftline.core.results import STATUS_SEVERITY, Kind, Result, Status, finite_or_none, worst
from driftline.core.window import Window

logger = logging.getLogger("driftline.events")

EVENT_NAMES: dict[Kind, str] = {
    Kind.DATA_DRIFT: "driftline.data_drift.detected",
    Kind.CONCEPT_DRIFT: "driftline.concept_drift.detected",
    Kind.PERFORMANCE: "driftline.performance.degraded",
    Kind.DATA_QUALITY: "driftline.data_quality.failed",
    Kind.OPERATIONAL: "driftline.operational.degraded",
}
#: Emitted by the retrain flow when a new model version is recorded.
RETRAIN_PROMOTED = "driftline.retrain.promoted"
PROBLEM_STATUSES = (Status.WARNING, Status.ALERT)
MAX_WORST = 5
SEND_TIMEOUT_S = 20.0


def model_resource_id(model: str) -> str:
    return f"driftline.model.{model}"


def _ratio(result: Result) -> float:
    value, threshold = finite_or_none(result.value), finite_or_none(result.threshold)
    if value is None or threshold is None or threshold == 0:
        return 0.0
    return abs(value / threshold)


def worst_metrics(results: Iterable[Result], limit: int = MAX_WORST) -> list[dict[str, Any]]:
    """The most severe results (alert before warning, then furthest past their threshold), as plain dicts."""
    problems = [r for r in results if r.status in PROBLEM_STATUSES]
    problems.sort(key=lambda r: (-STATUS_SEVERITY[r.status], -_ratio(r), r.feature or "", r.metric))
    return [
        {
            "feature": r.feature,
            "metric": r.metric,
            "value": finite_or_none(r.value),
            "threshold": finite_or_none(r.threshold),
            "status": str(r.status),
        }
        # The result's one sentence (#16), when it has one.
        | ({"reason": r.details["reason"]} if isinstance(r.details.get("reason"), str) else {})
        for r in problems[:limit]
    ]


def problems_by_kind(results: Iterable[Result]) -> dict[Kind, tuple[Status, list[Result]]]:
    """Kinds whose worst status is warning or alert, with that status and their results."""
    grouped: dict[Kind, list[Result]] = {}
    for result in results:
        grouped.setdefault(Kind(result.kind), []).append(result)
    out: dict[Kind, tuple[Status, list[Result]]] = {}
    for kind, rows in grouped.items():
        status = worst([r.status for r in rows])
        if status in PROBLEM_STATUSES:
            out[kind] = (status, rows)
    return out


def build_window_events(
    model: str, window: Window, results: list[Result], flow_run_id: str | None = None
) -> list[dict[str, Any]]:
    """The events of one window, as JSON-ready dicts (``prefect.events.Event`` fields)."""
    events = []
    for kind, (status, rows) in sorted(problems_by_kind(results).items()):
        related = []
        if flow_run_id:
            related.append(
                {"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"}
            )
        events.append(
            {
                "id": str(uuid.uuid4()),
                "occurred": datetime.now(UTC).isoformat(),
                "event": EVENT_NAMES[kind],
                "resource": {
                    "prefect.resource.id": model_resource_id(model),
                    "driftline.model": model,
                    "driftline.kind": str(kind),
                    "driftline.status": str(status),
                },
                "related": related,
                "payload": {
                    "model": model,
                    "kind": str(kind),
                    "status": str(status),
                    "window_start": window.start.isoformat(),
                    "window_end": window.end.isoformat(),
                    "flow_run_id": flow_run_id,
                    "worst": worst_metrics(rows),
                },
            }
        )
    return events


def build_event(name: str, model: str, payload: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Any other Driftline event about a model (e.g. ``driftline.retrain.promoted``)."""
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": model_resource_id(model), "driftline.model": model, **(labels or {})},
        "related": [],
        "payload": payload,
    }


async def _send_async(events: list[dict[str, Any]]) -> None:
    from prefect.events import Event
    from prefect.events.clients import get_events_client

    # checkpoint_every=1: each send is followed by a ping/pong, so a returned emit() was received.
    async with get_events_client(reconnection_attempts=1, checkpoint_every=1) as client:
        for raw in events:
            await client.emit(Event.model_validate(raw))


_OFFLINE = threading.Event()


def prefect_offline(offline: bool) -> None:
    """Set by a run that has lost its Prefect API: events then go to the outbox without a send attempt
    (a doomed connection per window), and are sent by the next run that reaches Prefect."""
    if offline:
        _OFFLINE.set()
    else:
        _OFFLINE.clear()


def send_events(events: list[dict[str, Any]], timeout_s: float = SEND_TIMEOUT_S) -> None:
    """Send events to the Prefect API and wait for the server to have them; raises on failure."""
    if not events:
        return
    from prefect.utilities.asyncutils import run_coro_as_sync

    run_coro_as_sync(asyncio.wait_for(_send_async(events), timeout=timeout_s))


#: A sent event is read back from the API after this long (Prefect's event persister flushes every 5 s).
CONFIRM_AFTER_S = 10.0


def stored_event_ids(ids: list[str]) -> set[str]:
    """Which of ``ids`` the Prefect API has stored (read back with ``/events/filter``); raises when
    the API cannot be reached."""
    from datetime import timedelta

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventIDFilter, EventOccurredFilter

    if not ids:
        return set()
    now = datetime.now(UTC)
    found: set[str] = set()
    with get_client(sync_client=True) as client:
        for first in range(0, len(ids), 50):
            chunk = ids[first : first + 50]
            page = client.read_events(
                filter=EventFilter(
                    id=EventIDFilter(id=[uuid.UUID(i) for i in chunk]),
                    occurred=EventOccurredFilter(since=now - timedelta(days=2), until=now + timedelta(hours=1)),
                ),
                limit=len(chunk),
            )
            found |= {str(event.id) for event in page.events}
    return found


def emit_events(
    events: list[dict[str, Any]], outbox_engine: Engine | None = None, model: str | None = None
) -> tuple[list[str], list[str]]:
    """Keep ``events`` in the outbox, then send them. Returns (sent, queued) ids.

    Outbox first: the events client's acknowledgement means the server received an event, not
    that it stored it (a server killed seconds later lost acknowledged events), so an event stays
    ``pending`` until it is read back from the API (:func:`driftline.tasks.notify.confirm_events`
    at the end of a run, or a later delivery pass, which sends it again under the same id when it
    is missing). Without ``outbox_engine`` a failed send is logged as lost.
    """
    if not events:
        return [], []
    ids = [e["id"] for e in events]
    if outbox_engine is not None:
        from driftline.storage.outbox import keep_events

        keep_events(outbox_engine, events, CONFIRM_AFTER_S)
    try:
        if _OFFLINE.is_set():
            raise ConnectionError("the Prefect API was unreachable earlier in this run")
        send_events(events)
        return ids, []
    except Exception as exc:  # API down, timeout, bad URL: never fatal for the window
        reason = f"{type(exc).__name__}: {exc}"[:300]
        if outbox_engine is None:
            logger.error("LOST %d Prefect event(s) for %s (no outbox): %s", len(events), model, reason)
            return [], []
        from driftline.storage.outbox import note_event_send_failed

        note_event_send_failed(outbox_engine, ids, reason)
        logger.warning("could not send %d event(s) for %s (%s); kept in the outbox", len(events), model, reason)
        return [], ids


def emit_window_events(
    model: str,
    window: Window,
    results: list[Result],
    flow_run_id: str | None = None,
    *,
    outbox_engine: Engine | None = None,
) -> list[str]:
    """Emit one event per kind in warning/alert; returns the ids sent, or queued in the outbox for later.

    Without ``outbox_engine`` an event that cannot be sent is logged as lost (ERROR) and not returned.
    """
    sent, queued = emit_events(build_window_events(model, window, results, flow_run_id), outbox_engine, model)
    return sent + queued
