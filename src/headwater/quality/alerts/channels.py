"""Alert channels: a signed JSON webhook, a Slack-compatible webhook and SMTP email.

A channel turns a :class:`Notification` into one delivery and reports how it went; it never
raises for a delivery problem (the run that triggered the alert must not fail because a chat
service is down). Secret settings (``secret``, ``password``) must be ``${ENV_VAR}`` references;
they are resolved when a message is sent and never appear in errors.

Third-party channels register a factory (``config dict -> Channel``) in the
``headwater.alerts`` entry-point group.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from headwater.errors import ConfigError, HeadwaterError, choices_hint
from headwater.secrets import has_env_ref, resolve_env_refs

__all__ = [
    "CHANNEL_TYPES",
    "SIGNATURE_HEADER",
    "Channel",
    "Delivery",
    "EmailChannel",
    "Notification",
    "SlackChannel",
    "WebhookChannel",
    "build_channel",
    "sign",
]

SIGNATURE_HEADER = "X-Headwater-Signature"
_USER_AGENT = "headwater-alerts/1"


@dataclass(frozen=True)
class Notification:
    """What happened, ready to be rendered by any channel."""

    event: Literal["opened", "recovered", "test"]
    rule: str
    kind: str  # check_failure | anomaly | run_failure | freshness | test
    subject: str
    summary: str
    incident_id: int | None = None
    run_id: str | None = None
    pipeline: str | None = None
    dataset: str | None = None
    opened_at: str | None = None
    resolved_at: str | None = None
    occurrences: int = 1
    workspace: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "rule": self.rule,
            "kind": self.kind,
            "subject": self.subject,
            "summary": self.summary,
            "incident_id": self.incident_id,
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "dataset": self.dataset,
            "opened_at": self.opened_at,
            "resolved_at": self.resolved_at,
            "occurrences": self.occurrences,
            "workspace": self.workspace,
            **({"extra": self.extra} if self.extra else {}),
        }

    @property
    def title(self) -> str:
        if self.event == "recovered":
            return f"[headwater] RECOVERED {self.rule}: {self.subject}"
        if self.event == "test":
            return f"[headwater] test alert from rule {self.rule}"
        return f"[headwater] ALERT {self.rule}: {self.subject}"

    def text(self) -> str:
        lines = [self.title, self.summary]
        if self.run_id:
            lines.append(f"run: {self.run_id}")
        if self.event == "recovered" and self.opened_at:
            lines.append(f"open since {self.opened_at}, {self.occurrences} occurrence(s)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Delivery:
    channel: str
    ok: bool
    attempts: int
    error: str | None = None


class Channel(Protocol):
    name: str

    def send(self, notification: Notification) -> Delivery: ...


def sign(secret: str, body: bytes) -> str:
    """The ``X-Headwater-Signature`` value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _ChannelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str


def _secret_ref(value: str | None, info_field: str) -> str | None:
    if value is not None and not has_env_ref(value):
        raise ValueError(
            f"`{info_field}` must be a ${{ENV_VAR}} reference, not a plain value "
            "(secrets never live in headwater.yaml)"
        )
    return value


class _HttpConfig(_ChannelConfig):
    url: str
    timeout: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=0, le=10, description="Extra attempts after the first one.")
    backoff: float = Field(1.0, ge=0, description="Seconds before the first retry; doubles.")


class WebhookConfig(_HttpConfig):
    type: Literal["webhook"] = "webhook"
    secret: str | None = Field(None, description="${ENV} reference of the HMAC key.")
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("secret")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return _secret_ref(value, "secret")


class SlackConfig(_HttpConfig):
    type: Literal["slack"] = "slack"


class EmailConfig(_ChannelConfig):
    type: Literal["email"] = "email"
    host: str
    port: int = 25
    starttls: bool = False
    ssl: bool = Field(False, description="Implicit TLS (SMTPS, usually port 465).")
    username: str | None = None
    password: str | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    timeout: float = Field(10.0, gt=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("password")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return _secret_ref(value, "password")


class _HttpChannel:
    def __init__(
        self, name: str, config: _HttpConfig, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.name = name
        self.config = config
        self._sleep = sleep

    def _post(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        url = resolve_env_refs(self.config.url, where=f"alerts.channels.{self.name}.url")
        attempts = 0
        error: str | None = None
        for attempt in range(self.config.retries + 1):
            attempts = attempt + 1
            if attempt:
                self._sleep(self.config.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            request.add_header("User-Agent", _USER_AGENT)
            for key, value in headers.items():
                request.add_header(key, value)
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                    response.read()
                return Delivery(self.name, True, attempts)
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500 and exc.code not in (408, 429):
                    break  # the receiver refuses this message: retrying cannot help
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                error = f"{type(exc).__name__}: {reason}"
        return Delivery(self.name, False, attempts, error)


class WebhookChannel(_HttpChannel):
    """POSTs the notification as JSON, signed with HMAC-SHA256 when a secret is set."""

    config: WebhookConfig

    def send(self, notification: Notification) -> Delivery:
        body = json.dumps(notification.to_json(), sort_keys=True).encode()
        headers = dict(self.config.headers)
        if self.config.secret:
            try:
                secret = resolve_env_refs(
                    self.config.secret, where=f"alerts.channels.{self.name}.secret"
                )
            except HeadwaterError as exc:
                return Delivery(self.name, False, 0, exc.message)
            headers[SIGNATURE_HEADER] = sign(secret, body)
        return self._post(body, headers)


class SlackChannel(_HttpChannel):
    """Slack incoming-webhook JSON: ``{"text": ...}`` (Mattermost and others accept it too)."""

    def send(self, notification: Notification) -> Delivery:
        icon = ":white_check_mark:" if notification.event == "recovered" else ":rotating_light:"
        body = json.dumps({"text": f"{icon} {notification.text()}"}).encode()
        return self._post(body, {})


class EmailChannel:
    """Plain-text email through SMTP (optionally STARTTLS or implicit TLS, and login)."""

    def __init__(self, name: str, config: EmailConfig) -> None:
        self.name = name
        self.config = config

    def send(self, notification: Notification) -> Delivery:
        cfg = self.config
        message = EmailMessage()
        message["Subject"] = notification.title
        message["From"] = cfg.from_
        message["To"] = ", ".join(cfg.to)
        message.set_content(
            notification.text() + "\n\n" + json.dumps(notification.to_json(), indent=2)
        )
        try:
            password = (
                resolve_env_refs(cfg.password, where=f"alerts.channels.{self.name}.password")
                if cfg.password
                else None
            )
            context = ssl.create_default_context()
            smtp_cls = smtplib.SMTP_SSL if cfg.ssl else smtplib.SMTP
            kwargs: dict[str, Any] = {"timeout": cfg.timeout}
            if cfg.ssl:
                kwargs["context"] = context
            with smtp_cls(cfg.host, cfg.port, **kwargs) as smtp:
                if cfg.starttls and not cfg.ssl:
                    smtp.starttls(context=context)
                if cfg.username and password is not None:
                    smtp.login(cfg.username, password)
                smtp.send_message(message)
        except HeadwaterError as exc:
            return Delivery(self.name, False, 1, exc.message)
        except (smtplib.SMTPException, OSError) as exc:
            return Delivery(self.name, False, 1, f"{type(exc).__name__}: {exc}")
        return Delivery(self.name, True, 1)


def _webhook(name: str, data: Mapping[str, Any]) -> Channel:
    return WebhookChannel(name, WebhookConfig.model_validate(data))


def _slack(name: str, data: Mapping[str, Any]) -> Channel:
    return SlackChannel(name, SlackConfig.model_validate(data))


def _email(name: str, data: Mapping[str, Any]) -> Channel:
    return EmailChannel(name, EmailConfig.model_validate(data))


CHANNEL_TYPES: dict[str, Callable[[str, Mapping[str, Any]], Channel]] = {
    "webhook": _webhook,
    "slack": _slack,
    "email": _email,
}


def _entry_point(kind: str) -> Callable[[str, Mapping[str, Any]], Channel] | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group="headwater.alerts"):
        if ep.name == kind:
            factory: Callable[[str, Mapping[str, Any]], Channel] = ep.load()
            return factory
    return None


def build_channel(name: str, data: Mapping[str, Any]) -> Channel:
    """The channel ``alerts.channels.<name>`` declares; a clear ConfigError when it is wrong."""
    kind = str(data.get("type", ""))
    factory = CHANNEL_TYPES.get(kind) or (_entry_point(kind) if kind else None)
    if factory is None:
        raise ConfigError(
            f"alert channel `{name}` has unknown type `{kind}`"
            if kind
            else f"alert channel `{name}` needs a `type`",
            location="headwater.yaml",
            field=f"alerts.channels.{name}.type",
            hint=choices_hint(kind, CHANNEL_TYPES, "channel types"),
        )
    try:
        return factory(name, data)
    except ValidationError as exc:
        problems = "; ".join(
            f"`alerts.channels.{name}.{'.'.join(str(p) for p in e['loc'])}`: {e['msg']}"
            for e in exc.errors()
        )
        first = exc.errors()[0]
        raise ConfigError(
            f"invalid alert channel `{name}`: {problems}",
            location="headwater.yaml",
            field=f"alerts.channels.{name}." + ".".join(str(p) for p in first["loc"]),
            hint="See docs/alerts.md for each channel type's settings.",
        ) from None
