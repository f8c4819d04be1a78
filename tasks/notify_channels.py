"""Where notifications go: Slack (Web API, Block Kit), SMTP e-mail, a generic JSON webhook, and
Prefect events kept in the outbox. Rendering works from the outbox payload alone.

Secrets (token, password, webhook URL) are read when a sender is built, from a Prefect Secret
block or an environment variable, and never appear in a log line, a stored error or an exception
message: every error text passes through :meth:`Redactor.scrub`.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from driftline.config.notifications import EmailChannel, SlackChannel, WebhookChannel
from driftline.core.errors import DriftlineError

TITLES = {
    "problem": "{model}: {kind_label} {status_upper}",
    "escalated": "{model}: {kind_label} escalated to {status_upper}",
    "reminder": "Still failing: {model}: {kind_label} {status_upper}",
    "resolved": "Resolved: {model}: {kind_label} is back to ok",
    "test": "Test message from Driftline for {model}: this channel works",
}
EMOJI = {
    "problem": ":red_circle:",
    "escalated": ":red_circle:",
    "reminder": ":alarm_clock:",
    "resolved": ":white_check_mark:",
    "test": ":wave:",
}
KIND_LABELS = {
    "data_drift": "data drift",
    "concept_drift": "concept drift",
    "performance": "performance",
    "data_quality": "data quality",
    "operational": "operational health",
}


class NotificationError(DriftlineError):
    """A message could not be sent (its text is already free of secrets).

    ``retry_after_s``: the receiver asked not to be called again before this many seconds."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


#: The key a receiver deduplicates on: the same for every attempt at one message, in the webhook's
#: JSON body (``idempotency_key``) and its ``Idempotency-Key`` header, and the e-mail's Message-ID.
IDEMPOTENCY_KEY = "idempotency_key"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- secrets ----------------------------------------------------------------------------------

_TOKEN_PATTERNS = [
    re.compile(r"xox[a-z]-[A-Za-z0-9-]+"),
    re.compile(r"(https?://[^/\s'\"<>]+)/[^\s'\"<>]*"),  # keep scheme and host, drop path and query
]


class Redactor:
    """Remembers secret values and removes them (and anything token- or URL-path-shaped) from text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, value: str | None) -> str | None:
        if value and len(value) >= 4:
            self._secrets.add(value)
        return value

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        text = _TOKEN_PATTERNS[0].sub("xox?-***", text)
        return _TOKEN_PATTERNS[1].sub(r"\1/***", text)


def read_secret(secret_block: str | None, env: str | None, what: str) -> str:
    """A secret from a Prefect Secret block (wins) or an environment variable; never echoed."""
    value: Any = None
    if secret_block:
        from prefect.blocks.system import Secret

        try:
            value = Secret.load(secret_block).get()
        except Exception as exc:
            reason = type(exc).__name__
            raise NotificationError(f"{what}: cannot load Prefect Secret block {secret_block!r} ({reason})") from None
        if not value:
            raise NotificationError(f"{what}: Prefect Secret block {secret_block!r} is empty")
    elif env:
        value = os.environ.get(env)
        if not value:
            raise NotificationError(f"{what}: environment variable {env} is not set")
    else:
        raise NotificationError(f"{what}: no secret source configured")
    return str(value)


# --- rendering --------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def title(payload: dict[str, Any]) -> str:
    kind = payload.get("kind") or ""
    return TITLES.get(payload["transition"], "{model}: {kind_label} {status_upper}").format(
        model=payload["model"],
        kind_label=KIND_LABELS.get(kind, kind),
        status_upper=str(payload.get("status", "")).upper(),
    )


def window_text(payload: dict[str, Any]) -> str:
    start, end = payload.get("window_start", ""), payload.get("window_end", "")
    return f"{start[:16].replace('T', ' ')} .. {end[11:16]} UTC" if start and end else "n/a"


def worst_lines(payload: dict[str, Any]) -> list[str]:
    lines = []
    for item in payload.get("worst") or []:
        if item.get("reason"):  # the result's own sentence (#16): what, by how much, against what, why
            lines.append(str(item["reason"]))
            continue
        where = item.get("feature") or "(model)"
        lines.append(
            f"{where}: {item['metric']} = {_fmt(item.get('value'))} (threshold {_fmt(item.get('threshold'))}, "
            f"{item.get('status')})"
        )
    return lines


def slack_escape(text: object) -> str:
    """Text for Slack's mrkdwn with its three control characters escaped (``&``, ``<``, ``>``).

    Model, feature and metric names come from configs and data; unescaped, ``<!channel>`` pings a
    channel and ``<https://x|label>`` makes a link that shows ``label``. Plain-text blocks need none.
    """
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(payload: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and Block Kit blocks for one message; every name in mrkdwn is escaped (:func:`slack_escape`)."""
    heading = title(payload)
    kind = payload.get("kind") or ""
    text = slack_escape(f"{EMOJI.get(payload['transition'], '')} {heading}".strip())
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": heading[:150], "emoji": True}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Model*\n{slack_escape(payload['model'])}"},
                {"type": "mrkdwn", "text": f"*Window*\n{slack_escape(window_text(payload))}"},
                {"type": "mrkdwn", "text": f"*Check*\n{slack_escape(KIND_LABELS.get(kind, kind))}"},
                {"type": "mrkdwn", "text": f"*Status*\n{slack_escape(payload.get('status'))}"},
            ],
        },
    ]
    lines = worst_lines(payload)
    if lines and payload["transition"] != "resolved":
        body = "*What failed*\n" + "\n".join(f"• {slack_escape(line)}" for line in lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body[:2900]}})
    buttons = []
    if payload.get("flow_run_url"):
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Prefect flow run"},
                "url": payload["flow_run_url"],
            }
        )
    if payload.get("report_url"):
        buttons.append(
            {"type": "button", "text": {"type": "plain_text", "text": "Report"}, "url": payload["report_url"]}
        )
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    since = payload.get("incident_opened_window_start")
    if since:
        context = {"type": "mrkdwn", "text": f"Driftline · open since {slack_escape(since)}"}
        blocks.append({"type": "context", "elements": [context]})
    return text, blocks


def email_message(payload: dict[str, Any], sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[Driftline] {title(payload)}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    lines = [
        title(payload),
        "",
        f"Model:  {payload['model']}",
        f"Window: {window_text(payload)}",
        f"Check:  {payload.get('kind')}",
        f"Status: {payload.get('status')}",
    ]
    worst = worst_lines(payload)
    if worst and payload["transition"] != "resolved":
        lines += ["", "What failed:", *(f"  - {line}" for line in worst)]
    for label, key in (("Prefect flow run", "flow_run_url"), ("Report", "report_url")):
        if payload.get(key):
            lines.append(f"{label}: {payload[key]}")
    message.set_content("\n".join(lines) + "\n")
    if payload.get(IDEMPOTENCY_KEY):  # a resent e-mail carries the same Message-ID: clients can fold it
        message["Message-ID"] = f"<{payload[IDEMPOTENCY_KEY]}@driftline>"
    return message


def webhook_body(payload: dict[str, Any]) -> dict[str, Any]:
    return {"source": "driftline", "text": title(payload), **payload}


# --- senders ----------------------------------------------------------------------------------


Sender = Callable[[dict[str, Any]], None]


def _capped_rate_limit_handler(max_retry_count: int, max_wait_s: float) -> Any:
    """Slack's 429 handler, but it gives up (the message stays pending) when Retry-After is long."""
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    class CappedRateLimitErrorRetryHandler(RateLimitErrorRetryHandler):
        def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
            if response is None or response.status_code != 429:
                return False
            for key, values in response.headers.items():
                if key.lower() == "retry-after":
                    try:
                        return float(values[0] if isinstance(values, list) else values) <= max_wait_s
                    except (TypeError, ValueError):
                        return True
            return True

    return CappedRateLimitErrorRetryHandler(max_retry_count=max_retry_count)


def slack_sender(config: SlackChannel, redactor: Redactor) -> Sender:
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, ServerErrorRetryHandler

    token = redactor.add(read_secret(config.token_secret, config.token_env, "slack token"))
    base_url = config.base_url if config.base_url.endswith("/") else config.base_url + "/"
    client = WebClient(
        token=token,
        base_url=base_url,
        timeout=int(config.timeout_s),
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=1),
            _capped_rate_limit_handler(max_retry_count=2, max_wait_s=10),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )

    def send(payload: dict[str, Any]) -> None:
        text, blocks = slack_blocks(payload)
        try:
            client.chat_postMessage(channel=config.channel, text=text, blocks=blocks)
        except SlackApiError as exc:
            status = getattr(exc.response, "status_code", "?")
            error = exc.response.get("error") if hasattr(exc.response, "get") else None
            raise NotificationError(redactor.scrub(f"Slack API error: HTTP {status} {error or ''}".strip())) from None
        except Exception as exc:  # urllib errors, timeouts
            raise NotificationError(redactor.scrub(f"Slack unreachable: {type(exc).__name__}: {exc}")) from None

    return send


def email_sender(config: EmailChannel, redactor: Redactor) -> Sender:
    password = None
    if config.password_env or config.password_secret:
        password = redactor.add(read_secret(config.password_secret, config.password_env, "smtp password"))

    def send(payload: dict[str, Any]) -> None:
        message = email_message(payload, config.sender, config.to)
        try:
            smtp: smtplib.SMTP
            if config.ssl:
                smtp = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout_s, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
            with smtp:
                if config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if config.username and password:
                    smtp.login(config.username, password)
                smtp.send_message(message)
        except Exception as exc:
            reason = f"SMTP {config.host}:{config.port}: {type(exc).__name__}: {exc}"
            raise NotificationError(redactor.scrub(reason)) from None

    return send


def webhook_url(config: WebhookChannel | Any) -> str:
    if config.url:
        return str(config.url)
    return read_secret(config.url_secret, config.url_env, "webhook url")


def run_with_deadline(coroutine: Any, deadline_s: float) -> Any:
    """Run ``coroutine`` to completion or cancel it after ``deadline_s`` (raises ``TimeoutError``).

    A total deadline, unlike a socket timeout, which a receiver trickling one byte at a time resets
    forever. In its own event loop (a new thread when the caller's thread already runs one).
    """
    import asyncio

    async def bounded() -> Any:
        return await asyncio.wait_for(coroutine, timeout=deadline_s)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, bounded()).result()


def webhook_sender(config: WebhookChannel, redactor: Redactor) -> Sender:
    import httpx

    url = redactor.add(webhook_url(config))
    assert url is not None

    async def post(body: dict[str, Any], headers: dict[str, str]) -> Any:
        async with httpx.AsyncClient(timeout=config.timeout_s) as client:
            return await client.post(url, json=body, headers=headers)

    def send(payload: dict[str, Any]) -> None:
        headers = {"Idempotency-Key": str(payload[IDEMPOTENCY_KEY])} if payload.get(IDEMPOTENCY_KEY) else {}
        try:  # timeout_s bounds the whole request, connect to last byte
            response = run_with_deadline(post(webhook_body(payload), headers), config.timeout_s)
        except TimeoutError:
            raise NotificationError(f"webhook did not answer within {config.timeout_s:g} s") from None
        except Exception as exc:
            raise NotificationError(redactor.scrub(f"webhook unreachable: {type(exc).__name__}: {exc}")) from None
        if response.status_code >= 300:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            hint = f", Retry-After {wait:g} s" if wait is not None else ""
            raise NotificationError(f"webhook answered HTTP {response.status_code}{hint}", retry_after_s=wait)

    return send


def event_sender(payload: dict[str, Any]) -> None:
    from driftline.tasks.events import send_events

    try:
        send_events([payload])
    except Exception as exc:
        raise NotificationError(f"Prefect API unreachable: {type(exc).__name__}: {exc}"[:500]) from None
