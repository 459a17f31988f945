"""Headwater's exception hierarchy.

Every error a user can cause derives from :class:`HeadwaterError`. Errors carry
structured fields (``location``, ``hint``, ``pipeline``, ``step``, ``connector``,
``dataset``, ...) that the CLI prints and the API serializes, and they survive
pickling so that executors can ship them between processes.

::

    HeadwaterError
    ├── ConfigError                  headwater.yaml, settings, environment
    │   ├── WorkspaceNotFoundError
    │   └── SecretError              missing ${ENV} reference, undecryptable secret, bad key
    ├── MetadataError                metadata store unreachable or migration failed
    ├── PipelineError                the pipeline language
    │   ├── PipelineSyntaxError      invalid YAML, unknown step type, bad field (file:line:col)
    │   ├── CycleError               steps depend on each other in a loop
    │   │   └── TriggerCycleError    dataset triggers that would run pipelines in a loop
    │   └── RefError                 ref() to a dataset nothing produces and the lake lacks
    ├── ConnectorError
    │   ├── ConnectorUnavailableError  endpoint unreachable or timed out (Transient: retried)
    │   ├── UnknownConnectorError    no connector registered under that name
    │   ├── ConnectionNotFoundError  no connection declared under that name
    │   ├── SourceNotFoundError      a file, table or stream that does not exist
    │   ├── SourceFormatError        malformed input that cannot be read at all
    │   └── UnsupportedOperationError  a capability the connector does not declare
    ├── DatasetError
    │   ├── DatasetNotFoundError
    │   ├── InvalidDatasetNameError
    │   └── SchemaIncompatibleError  a write whose schema is not a safe evolution
    ├── QueryError                   SQL that does not parse or bind
    ├── QualityError
    │   └── CheckFailedError         an ``error`` check that blocks the step
    ├── RunError                     a run or step failed (wraps the cause)
    │   ├── StepTimeoutError         an attempt ran longer than the step's `timeout:`
    │   └── ResumeError              a run that cannot be resumed (unknown, still running)
    ├── SchedulerError               the scheduler cannot start or lost its metadata
    ├── SubscriptionError            an unknown subscription, a bad webhook URL or secret
    └── UserCodeError                user Python code raised; keeps the original traceback
        └── TransientUserCodeError   ... an exception marked `Transient` (retried)

Marker mixins :class:`Transient` and :class:`Terminal` decide whether the runner
retries; the runner never matches on message text.

Pickling keeps the class, every structured field and the traceback text
(:attr:`HeadwaterError.remote_traceback`), so an error raised in a process-pool
or Dask worker arrives in the runner as the same error, with the worker's stack.
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CheckFailedError",
    "ConfigError",
    "ConnectionNotFoundError",
    "ConnectorError",
    "ConnectorUnavailableError",
    "CycleError",
    "DatasetError",
    "DatasetNotFoundError",
    "HeadwaterError",
    "InvalidDatasetNameError",
    "MetadataError",
    "PipelineError",
    "PipelineSyntaxError",
    "QualityError",
    "QueryError",
    "RefError",
    "ResumeError",
    "RunError",
    "SchedulerError",
    "SchemaIncompatibleError",
    "SecretError",
    "SourceFormatError",
    "SourceNotFoundError",
    "StepTimeoutError",
    "SubscriptionError",
    "Terminal",
    "Transient",
    "TransientUserCodeError",
    "TriggerCycleError",
    "UnknownConnectorError",
    "UnsupportedOperationError",
    "UserCodeError",
    "WorkspaceNotFoundError",
    "did_you_mean",
]

_FIELDS = ("location", "hint", "pipeline", "step", "connector", "dataset", "column", "field")


class Transient:
    """Marker: retrying the same operation may succeed (network blip, lock timeout)."""


class Terminal:
    """Marker: retrying cannot help (bad config, bad data, missing object)."""


class HeadwaterError(Exception):
    """Root of every error Headwater raises at a user.

    ``message`` says what happened; ``location`` points at ``file:line:col`` or a
    field path; ``hint`` says what to do. Extra keyword fields are kept in
    :attr:`details` and serialized by :meth:`attrs`. ``remote_traceback`` holds the
    formatted stack of the process that raised it, once it crossed a process boundary.
    """

    remote_traceback: str | None = None

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        hint: str | None = None,
        pipeline: str | None = None,
        step: str | None = None,
        connector: str | None = None,
        dataset: str | None = None,
        column: str | None = None,
        field: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint
        self.pipeline = pipeline
        self.step = step
        self.connector = connector
        self.dataset = dataset
        self.column = column
        self.field = field
        self.details = details

    def attrs(self) -> dict[str, Any]:
        """Structured fields for APIs and logs (never secrets)."""
        out: dict[str, Any] = {"type": type(self).__name__, "message": self.message}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update({k: v for k, v in self.details.items() if v is not None})
        return out

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def traceback_text(self) -> str | None:
        """The stack where this error was raised: the remote one if it was shipped."""
        if self.remote_traceback:
            return self.remote_traceback
        if self.__traceback__ is None:
            return None
        return "".join(traceback.format_exception(type(self), self, self.__traceback__))

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {name: getattr(self, name) for name in _FIELDS}
        kwargs.update(self.details)
        return (_rebuild, (type(self), self.message, kwargs, self.traceback_text()))


def _rebuild(
    cls: type[HeadwaterError],
    message: str,
    kwargs: dict[str, Any],
    remote_traceback: str | None = None,
) -> HeadwaterError:
    exc = cls(message, **kwargs)
    exc.remote_traceback = remote_traceback
    return exc


class ConfigError(HeadwaterError, Terminal):
    """Workspace settings or environment are wrong."""


class WorkspaceNotFoundError(ConfigError):
    """No headwater.yaml where a workspace was expected."""


class SecretError(ConfigError):
    """A secret cannot be resolved: unset ${ENV} reference, wrong key, corrupt ciphertext."""


class MetadataError(HeadwaterError):
    """The metadata store cannot be opened or migrated."""


class PipelineError(HeadwaterError, Terminal):
    """Something is wrong with a pipeline definition."""


class PipelineSyntaxError(PipelineError):
    """Invalid YAML or a node that does not match the pipeline language."""


class CycleError(PipelineError):
    """Pipeline steps depend on each other in a cycle."""


class RefError(PipelineError):
    """A ref() names a dataset that no step produces and the lake does not hold."""


class ConnectorError(HeadwaterError):
    """A connector failed."""


class ConnectorUnavailableError(ConnectorError, Transient):
    """The endpoint is unreachable or timed out; a retry may succeed."""


class UnknownConnectorError(ConnectorError, Terminal):
    """No connector is registered under the requested name."""


class ConnectionNotFoundError(ConnectorError, Terminal):
    """No connection is declared under the requested name."""


class SourceNotFoundError(ConnectorError, Terminal):
    """A file, table or stream that does not exist."""


class SourceFormatError(ConnectorError, Terminal):
    """Input so malformed it cannot be read (not just a few bad rows)."""


class UnsupportedOperationError(ConnectorError, Terminal):
    """The connector does not declare the requested capability."""


class DatasetError(HeadwaterError):
    """A managed dataset operation failed."""


class DatasetNotFoundError(DatasetError, Terminal):
    """No managed dataset by that name."""


class InvalidDatasetNameError(DatasetError, Terminal):
    """A dataset name that is not ``zone.name``."""


class DatasetConflictError(DatasetError, Transient):
    """A concurrent writer committed first and Delta refused this commit; nothing was
    committed, and running the write again (a step's ``retries``) may succeed."""


class SchemaIncompatibleError(DatasetError, Terminal):
    """A write whose schema is not a safe evolution of the dataset's schema."""


class QueryError(HeadwaterError, Terminal):
    """SQL that does not parse, bind or execute."""


class QualityError(HeadwaterError):
    """A data quality operation failed."""


class CheckFailedError(QualityError, Terminal):
    """An ``error``-severity check blocks the step."""


class RunError(HeadwaterError):
    """A run or one of its steps failed."""


class StepTimeoutError(RunError, Terminal):
    """A step attempt ran longer than the step's ``timeout:``."""


class ResumeError(RunError, Terminal):
    """A run cannot be resumed: unknown, still running, or its pipeline text is gone."""


class SchedulerError(HeadwaterError):
    """The scheduler cannot work: pipelines that do not load, metadata it cannot write."""


class SubscriptionError(HeadwaterError, Terminal):
    """A subscription that does not exist, or a webhook URL or secret that is not usable."""


class TriggerCycleError(CycleError):
    """Dataset triggers that would run pipelines in a loop (A -> raw.x -> B -> raw.y -> A)."""


class UserCodeError(HeadwaterError):
    """User-supplied code raised; ``traceback`` keeps the original."""


class TransientUserCodeError(UserCodeError, Transient):
    """User code raised an exception marked :class:`Transient`: the step is retried."""


def did_you_mean(value: str, choices: Iterable[str]) -> str | None:
    """Return ``"Did you mean `x`?"`` for the closest choice, or None."""
    matches = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"Did you mean `{matches[0]}`?" if matches else None


def choices_hint(value: str, choices: Iterable[str], what: str = "choices") -> str:
    """A hint that offers the closest match and lists the valid choices."""
    options = sorted(set(choices))
    close = did_you_mean(value, options)
    listed = ", ".join(options) if options else "(none)"
    return f"{close + ' ' if close else ''}Valid {what}: {listed}."
