"""The ``schedule:`` and ``trigger:`` nodes of a pipeline file.

::

    schedule:
      cron: "0 6 * * *"          # or just `schedule: "0 6 * * *"`
      timezone: Europe/Berlin
      catchup: latest            # none | latest | all
      max_concurrent_runs: 1
    trigger:
      datasets: [raw.orders]

The cron expression and the time zone are checked when the file is loaded, so a typo
is reported at its ``file:line:col`` rather than when the scheduler starts.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, GetJsonSchemaHandler, field_validator, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from headwater.errors import did_you_mean
from headwater.pipelines._nodes import DatasetName, Node

__all__ = ["CRON_EXAMPLE", "Catchup", "DatasetTrigger", "Schedule", "check_cron", "check_timezone"]

Catchup: TypeAlias = Literal["none", "latest", "all"]

#: Shown in errors about a cron expression.
CRON_EXAMPLE = (
    "Use 5 fields `minute hour day-of-month month day-of-week`, e.g. `0 6 * * *` "
    "(every day at 06:00) or `*/15 * * * 1-5` (every 15 minutes on weekdays); "
    "a 6th field adds seconds, e.g. `* * * * * */10`."
)


def check_cron(expression: str) -> str | None:
    """Why ``expression`` is not a usable cron expression, or None when it is."""
    from croniter import croniter
    from croniter.croniter import CroniterError

    text = expression.strip()
    fields = text.split()
    if not text.startswith("@") and len(fields) not in (5, 6):
        return f"it has {len(fields)} field{'s' if len(fields) != 1 else ''}, expected 5 or 6"
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError, IndexError, TypeError) as exc:
        reason = str(exc).replace(f"[{text}]", "").replace("is not acceptable,", "")
        return " ".join(reason.split()) or type(exc).__name__
    return None


def check_timezone(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or None when it is."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        close = did_you_mean(name, available_timezones())
        return close or "Use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`."
    return None


class Schedule(Node):
    """When `headwater scheduler` runs the pipeline. A plain string is the `cron`."""

    cron: Annotated[str, Field(min_length=1)]
    """A cron expression: `minute hour day-of-month month day-of-week` (e.g. `0 6 * * *`);
    a 6th field adds seconds (`* * * * * */10`: every 10 seconds)."""
    timezone: Annotated[str, Field(min_length=1)] = "UTC"
    """The IANA time zone the cron is read in (`Europe/Berlin`); DST is followed: a time
    skipped in spring fires once at the first valid time after it, a time repeated in
    autumn fires once (unless the hour field is `*`, which fires every real hour)."""
    catchup: Catchup = "latest"
    """Ticks missed while no scheduler ran: `none` skips them, `latest` runs only the most
    recent one, `all` runs every one of them (in order)."""
    max_concurrent_runs: Annotated[int, Field(ge=1, le=1000)] = 1
    """Runs of this pipeline the scheduler lets run at once; more wait in the queue."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # editors should accept the short form `schedule: "0 6 * * *"` too
        as_object = handler.resolve_ref_schema(handler(core_schema))
        short = {"type": "string", "minLength": 1, "description": "A cron expression (UTC)."}
        return {"anyOf": [short, as_object]}

    @model_validator(mode="before")
    @classmethod
    def _plain_cron(cls, data: Any) -> Any:
        return {"cron": data} if isinstance(data, str) else data

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = check_cron(value)
        if problem is not None:
            raise PydanticCustomError(
                "cron",
                "invalid cron expression `{value}`: {problem}. {example}",
                {"value": value, "problem": problem, "example": CRON_EXAMPLE},
            )
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        problem = check_timezone(value)
        if problem is not None:
            raise PydanticCustomError(
                "timezone",
                "unknown time zone `{value}`. {problem}",
                {"value": value, "problem": problem},
            )
        return value


class DatasetTrigger(Node):
    """Queue the pipeline when a run commits a new version of one of `datasets`."""

    datasets: Annotated[list[DatasetName], Field(min_length=1)]
    """Managed datasets (`zone.name`) whose new versions queue this pipeline."""
