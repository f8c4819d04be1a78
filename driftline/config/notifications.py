"""monitors.yaml keys for alerts and automated actions: ``notifications`` and ``actions``.

``notifications`` may appear at the top level (defaults for every model) and per model (overrides,
key by key: only the keys a model sets replace the defaults). ``actions`` is per model.

Secrets (the Slack token, an SMTP password, a webhook URL that embeds a token) are never written
in the file: each is named by an environment variable (``*_env``) or a Prefect Secret block
(``*_secret``), and read only when a message is sent.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from driftline.core.results import Kind

StatusLevel = Literal["warning", "alert"]
ALL_KINDS: tuple[Kind, ...] = tuple(Kind)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackChannel(_Strict):
    """Slack Web API (``chat.postMessage``) with a bot token."""

    channel: str = Field(min_length=1)
    #: Prefect Secret block holding the bot token (``xoxb-...``); wins over ``token_env``.
    token_secret: str | None = None
    token_env: str | None = "SLACK_BOT_TOKEN"
    #: The Web API root; point it at a proxy or a local test server. Trailing slash added if missing.
    base_url: str = "https://slack.com/api/"
    timeout_s: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _has_token_source(self) -> SlackChannel:
        if not self.token_secret and not self.token_env:
            raise ValueError("set token_secret or token_env")
        return self


class EmailChannel(_Strict):
    """Plain SMTP (``smtplib``), optionally STARTTLS or implicit TLS."""

    to: list[str] = Field(min_length=1)
    sender: str = Field(min_length=3)
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    password_secret: str | None = None
    timeout_s: float = Field(default=10, gt=0)


class WebhookChannel(_Strict):
    """A generic JSON webhook (HTTP POST). Exactly one of ``url``, ``url_env``, ``url_secret``."""

    #: Only for URLs that are not secret (an internal endpoint); otherwise use url_env / url_secret.
    url: str | None = None
    url_env: str | None = None
    url_secret: str | None = None
    timeout_s: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> WebhookChannel:
        if sum(x is not None for x in (self.url, self.url_env, self.url_secret)) != 1:
            raise ValueError("set exactly one of url, url_env, url_secret")
        return self


class NotificationsConfig(_Strict):
    """When to notify (problem start, reminder, resolved) and where (Slack, e-mail, webhook)."""

    enabled: bool = True
    #: The status that opens an incident for a kind: ``alert`` (default) or also ``warning``.
    min_status: StatusLevel = "alert"
    #: Kinds that notify (default: all five).
    kinds: list[Kind] = Field(default_factory=lambda: list(ALL_KINDS))
    #: While an incident stays open, remind at most every this many hours (0 = never remind).
    reminder_hours: float = Field(default=6, ge=0)
    notify_resolved: bool = True
    #: Undelivered messages are retried by later runs until this many attempts, then marked failed.
    max_attempts: int = Field(default=10, ge=1)
    #: Prefect UI root for flow-run links, e.g. ``http://127.0.0.1:4200`` (default: PREFECT_UI_URL).
    prefect_ui_url: str | None = None
    #: Report link template; fields ``{model}``, ``{kind}``, ``{window_start}``, ``{window_end}``.
    report_url: str | None = None
    #: Also notify when a monitor flow run fails (Prefect automation; see deployments/automations.py).
    on_monitor_failure: bool = True
    slack: SlackChannel | None = None
    email: EmailChannel | None = None
    webhook: WebhookChannel | None = None

    def channels(self) -> list[str]:
        return [name for name in ("slack", "email", "webhook") if getattr(self, name) is not None]


def effective_notifications(
    defaults: NotificationsConfig | None, override: NotificationsConfig | None
) -> NotificationsConfig | None:
    """The model's notification settings: top-level defaults, with the keys the model set replaced."""
    if override is None:
        return defaults
    if defaults is None:
        return override
    return defaults.model_copy(update={key: getattr(override, key) for key in override.model_fields_set})


class RetrainAction(_Strict):
    """Retrain when a kind reaches a status: a Prefect automation runs Driftline's ``retrain-request``
    flow, which applies the cooldown, records the request and runs ``deployment`` (your training
    pipeline; default: Driftline's example trainer ``retrain/retrain``) with the documented parameters.

    Writing the ``retrain:`` block is the opt-in; ``enabled: false`` switches it off and keeps the settings.
    """

    enabled: bool = True
    on: list[Kind] = Field(default_factory=lambda: [Kind.DATA_DRIFT, Kind.PERFORMANCE])
    min_status: StatusLevel = "alert"
    #: Any Prefect deployment, ``flow-name/deployment-name``; see docs/alerts.md for its parameters.
    deployment: str = Field(default="retrain/retrain", pattern=r"^[^/]+/[^/]+$")
    #: A retrain started less than this many hours after the previous one is skipped.
    cooldown_hours: float = Field(default=24, ge=0)
    #: Driftline's own trainer pauses for a person's approval before it promotes. Unset means yes.
    require_approval: bool | None = None
    #: Labelled rows of the last this many hours (of the log's newest row) train the candidate.
    lookback_hours: int = Field(default=168, ge=1)
    holdout_fraction: float = Field(default=0.25, gt=0, lt=1)
    min_rows: int = Field(default=200, ge=10)
    #: The candidate replaces the current model only if it beats it by at least this much.
    min_improvement: float = Field(default=0.0, ge=0)

    @property
    def approval_required(self) -> bool:
        """``require_approval``, defaulting to yes: nothing Driftline trains is promoted unreviewed."""
        return True if self.require_approval is None else self.require_approval


_PROMOTED: Literal["retrain_promoted"] = "retrain_promoted"


class CicdWebhookAction(_Strict):
    """Call a CI/CD webhook (Prefect CallWebhook action) on a promoted model or on an alert."""

    url: str | None = None
    url_env: str | None = None
    url_secret: str | None = None
    #: ``retrain_promoted`` (a new model version was recorded) and/or result kinds at ``min_status``.
    on: list[Literal["retrain_promoted"] | Kind] = Field(default_factory=lambda: [_PROMOTED])
    min_status: StatusLevel = "alert"

    @model_validator(mode="after")
    def _one_source(self) -> CicdWebhookAction:
        if sum(x is not None for x in (self.url, self.url_env, self.url_secret)) != 1:
            raise ValueError("set exactly one of url, url_env, url_secret")
        return self


class ActionsConfig(_Strict):
    """What Prefect does on its own when a model degrades. Nothing unless asked for: no ``retrain:``
    block, no retrain automation; no ``cicd_webhook:`` block, no webhook."""

    retrain: RetrainAction | None = None
    cicd_webhook: CicdWebhookAction | None = None


#: What a model without ``actions:`` gets: no automation at all.
DEFAULT_ACTIONS = ActionsConfig()
#: The example trainer's settings for a model that never configured ``actions.retrain`` (run by hand).
DEFAULT_RETRAIN = RetrainAction()
