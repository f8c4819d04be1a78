"""Notifications carry each flagged result's sentence (#16 item 4)."""

from __future__ import annotations

from datetime import UTC, datetime

from driftline.core.results import Kind, Result, Status
from driftline.tasks.events import worst_metrics
from driftline.tasks.notify_channels import email_message, slack_blocks

START, END = datetime(2026, 3, 8, 12, tzinfo=UTC), datetime(2026, 3, 8, 13, tzinfo=UTC)
SENTENCE = "income: Wasserstein 0.801 ≥ 0.2 (alert), p < 1e-6, 310 rows vs 50,270 reference"


def test_slack_and_email_show_the_reason_sentence() -> None:
    results = [
        Result(
            model="loan",
            window_start=START,
            window_end=END,
            kind=Kind.DATA_DRIFT,
            metric="wasserstein",
            feature="income",
            value=0.801,
            threshold=0.2,
            status=Status.ALERT,
            details={"reason": SENTENCE},
        ),
        Result(
            model="loan",
            window_start=START,
            window_end=END,
            kind=Kind.DATA_DRIFT,
            metric="chi_square",
            feature="region",
            value=86.7,
            threshold=0.3,
            status=Status.WARNING,
            details={},
        ),
    ]
    worst = worst_metrics(results)
    assert worst[0]["reason"] == SENTENCE and "reason" not in worst[1]
    payload = {
        "model": "loan",
        "kind": "data_drift",
        "transition": "problem",
        "status": "alert",
        "window_start": START.isoformat(),
        "window_end": END.isoformat(),
        "worst": worst,
    }
    _, blocks = slack_blocks(payload)
    body = "\n".join(b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b)
    assert f"• {SENTENCE.replace('<', '&lt;')}" in body  # Slack mrkdwn escapes < > &
    assert "region: chi_square = 86.7 (threshold 0.3, warning)" in body  # no sentence: the old line
    assert SENTENCE in email_message(payload, "a@example.com", ["b@example.com"]).get_content()
