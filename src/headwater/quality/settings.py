"""The ``quality:`` and ``alerts:`` sections of headwater.yaml, validated with located errors.

::

    quality:
      anomaly: {threshold: 3.5, window_days: 28, min_points: 7}
      freshness:
        raw.orders: {max_age: 24h, column: ordered_at}
    alerts:
      channels:
        ops: {type: webhook, url: "https://hooks.example.com/hw", secret: "${HW_HOOK_SECRET}"}
      rules:
        - {name: failed-checks, on: check_failure, channels: [ops]}
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from headwater.errors import ConfigError
from headwater.quality.anomaly import AnomalySettings

__all__ = [
    "AlertRule",
    "AlertsSettings",
    "FreshnessRule",
    "QualitySettings",
    "matches",
    "parse_alerts",
    "parse_duration",
    "parse_quality",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(value: str | float | int, *, field: str = "duration") -> float:
    """``90``, ``90s``, ``15m``, ``24h``, ``7d``, ``2w`` as seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(
            f"invalid duration {value!r} for `{field}`: expected e.g. 90s, 15m, 24h, 7d"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FreshnessRule(_Model):
    max_age: float = Field(description="Oldest acceptable age of the newest row (e.g. 24h).")
    column: str | None = Field(None, description="Time column; default the first one.")

    @field_validator("max_age", mode="before")
    @classmethod
    def _age(cls, value: Any) -> float:
        seconds = parse_duration(value, field="max_age")
        if seconds <= 0:
            raise ValueError(f"`max_age` must be more than 0, got {value!r}")
        return seconds


class AnomalyOptions(_Model):
    threshold: float = Field(3.5, gt=0)
    window_days: int = Field(28, ge=1)
    min_points: int = Field(7, ge=2)
    seasonal_after_days: int = Field(21, ge=7)
    min_seasonal_points: int = Field(3, ge=2)
    enabled: bool = True

    def settings(self) -> AnomalySettings:
        return AnomalySettings(
            threshold=self.threshold,
            window_days=self.window_days,
            min_points=self.min_points,
            seasonal_after_days=self.seasonal_after_days,
            min_seasonal_points=self.min_seasonal_points,
        )


class QualitySettings(_Model):
    enabled: bool = Field(True, description="Measure metrics, scores and anomalies after runs.")
    anomaly: AnomalyOptions = Field(default_factory=lambda: AnomalyOptions())
    # dataset name (or glob such as raw.*) -> freshness expectation
    freshness: dict[str, FreshnessRule] = Field(default_factory=dict)

    def freshness_for(self, dataset: str) -> FreshnessRule | None:
        if dataset in self.freshness:
            return self.freshness[dataset]
        for pattern, rule in self.freshness.items():
            if fnmatch.fnmatchcase(dataset, pattern):
                return rule
        return None


RuleKind = Literal["check_failure", "anomaly", "run_failure", "freshness"]
RULE_KINDS: tuple[str, ...] = ("check_failure", "anomaly", "run_failure", "freshness")


class AlertRule(_Model):
    name: str
    on: RuleKind
    channels: list[str] = Field(min_length=1)
    datasets: list[str] = Field(default_factory=list, description="Globs; empty = all.")
    pipelines: list[str] = Field(default_factory=list, description="Globs; empty = all.")
    severity: Literal["error", "warn", "any"] = Field(
        "any", description="check_failure only: which check severities alert."
    )
    throttle: float = Field(
        0.0,
        description="At most one opening alert per subject in this window (e.g. 1h), even when "
        "an incident recovers and opens again.",
    )
    recovery: bool = Field(True, description="Send a notice when the incident recovers.")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads an unquoted `on:` key as the boolean True
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("throttle", mode="before")
    @classmethod
    def _throttle(cls, value: Any) -> float:
        return parse_duration(value, field="throttle")


class AlertsSettings(_Model):
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rules: list[AlertRule] = Field(default_factory=list)


def matches(name: str | None, patterns: list[str]) -> bool:
    if not patterns:
        return True
    return name is not None and any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _config_error(exc: ValidationError, section: str) -> ConfigError:
    first = exc.errors()[0]
    field = ".".join([section, *(str(p) for p in first["loc"])])
    problems = "; ".join(
        f"`{'.'.join([section, *(str(p) for p in e['loc'])])}`: {e['msg']}" for e in exc.errors()
    )
    return ConfigError(
        f"invalid settings: {problems}",
        location="headwater.yaml",
        field=field,
        hint="See docs/quality.md and docs/alerts.md for the keys these sections accept.",
    )


def parse_quality(data: Mapping[str, Any] | None) -> QualitySettings:
    try:
        return QualitySettings.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise _config_error(exc, "quality") from None


def parse_alerts(data: Mapping[str, Any] | None) -> AlertsSettings:
    try:
        settings = AlertsSettings.model_validate(dict(data or {}))
    except ValidationError as exc:
        raise _config_error(exc, "alerts") from None
    from headwater.errors import did_you_mean

    names = list(settings.channels)
    for i, rule in enumerate(settings.rules):
        for channel in rule.channels:
            if channel not in settings.channels:
                raise ConfigError(
                    f"alert rule `{rule.name}` names channel `{channel}`, which "
                    "alerts.channels does not declare",
                    location="headwater.yaml",
                    field=f"alerts.rules.{i}.channels",
                    hint=did_you_mean(channel, names)
                    or f"Declared channels: {', '.join(names) or 'none'}.",
                )
    return settings
