"""Persistence (``alert_after``, opt-in per model): an alert pages only when it lasts.

A result that reaches the alert level is kept an ``alert`` only if its check (same kind, metric and
feature) reached the alert level in at least ``alerts`` of the last ``of_last`` hourly windows, this
one included; otherwise it is stored as a ``warning`` whose details say why
(``details.persistence``) and whose sentence ends with it. The level each window reached is kept in
``details.level_before_persistence``, so a held-back alert still counts for the windows after it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.core.results import Result, Status
from driftline.core.window import Window
from driftline.storage.results import recent_alert_counts as stored_alert_counts

Key = tuple[str, str, str | None]


def recent_alert_counts(engine: Engine, model_config: ModelConfig, window: Window) -> dict[Key, int]:
    """Per (kind, metric, feature): how many of the ``of_last - 1`` hours before ``window`` reached the
    alert level (before persistence held any back)."""
    assert model_config.alert_after is not None
    since = window.start - timedelta(hours=model_config.alert_after.of_last - 1)
    return stored_alert_counts(engine, model_config.name, since, window.start)


def apply_persistence(model_config: ModelConfig, results: list[Result], earlier_alerts: dict[Key, int]) -> list[Result]:
    """Hold back alerts that have not lasted ``alert_after.alerts`` of the last ``of_last`` windows."""
    rule = model_config.alert_after
    if rule is None:
        return results
    out = []
    for r in results:
        if r.status != Status.ALERT:
            out.append(r)
            continue
        count = earlier_alerts.get((str(r.kind), r.metric, r.feature), 0) + 1
        details = dict(r.details) | {
            "level_before_persistence": "alert",
            "persistence": {"alerts": count, "of_last": rule.of_last, "needed": rule.alerts},
        }
        if count >= rule.alerts:
            out.append(replace(r, details=details))
            continue
        note = (
            f"held at warning: alert level in {count} of the last {rule.of_last} windows, "
            f"alert_after needs {rule.alerts}"
        )
        details["reason"] = f"{details['reason']}; {note}" if details.get("reason") else note
        out.append(replace(r, status=Status.WARNING, details=details))
    return out
