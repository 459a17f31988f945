"""Webhook subscriptions: a signed JSON notice to a URL when a dataset gets a new version.

The body is ``{"dataset", "version", "run_id", "pipeline", "committed_at"}`` (JSON,
keys sorted); the header ``X-Headwater-Signature: sha256=<hex>`` is the HMAC-SHA256 of
the exact body bytes with the subscription's secret, so a receiver recomputes it and
compares with :func:`hmac.compare_digest`. A 5xx or 429 answer, a refused connection
or a timeout is retried with exponential backoff; any other 4xx fails at once (the
receiver refuses the notice, sending it again will not help). Every attempt is recorded
in ``webhook_deliveries``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from headwater.errors import SubscriptionError
from headwater.pipelines.scheduling.queue import SchedulerStore
from headwater.secrets import ENV_REF, resolve_env_refs
from headwater.transform.refs import DATASET_NAME_PATTERN

if TYPE_CHECKING:
    from headwater.metadata.models import SubscriptionRow
    from headwater.workspace import Workspace

__all__ = [
    "SIGNATURE_HEADER",
    "Commit",
    "Subscriptions",
    "notify",
    "redeliver_stale",
    "sign",
    "verify",
]

log = logging.getLogger("headwater.scheduler")

SIGNATURE_HEADER = "X-Headwater-Signature"
#: Attempts per notice and the first wait between them (doubling each time).
ATTEMPTS = 5
BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Commit:
    """A new version of a dataset committed by a run."""

    version: int
    committed_at: datetime


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex hmac>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` with ``secret`` (constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class Subscriptions:
    """Add, list and remove webhook subscriptions of a workspace; secrets stay encrypted."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.queue = SchedulerStore(ws.store)

    def add(
        self, dataset: str, url: str, secret: str, *, description: str | None = None
    ) -> SubscriptionRow:
        """Subscribe ``url`` to new versions of ``dataset``.

        ``secret`` signs the notices: a ``${ENV_VAR}`` reference is kept as such (read
        when sending), any other value is stored encrypted with the workspace key.
        """
        if not re.match(DATASET_NAME_PATTERN, dataset):
            raise SubscriptionError(
                f"invalid dataset name `{dataset}`: expected `zone.name`",
                field="dataset",
                hint="Datasets are named `zone.name` in lower case, e.g. `raw.orders`.",
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SubscriptionError(
                f"invalid webhook URL `{url}`: expected http:// or https:// and a host",
                field="url",
                hint="For example https://hooks.example.com/headwater.",
            )
        if not secret:
            raise SubscriptionError(
                "a webhook subscription needs a secret to sign its notices",
                field="secret",
                hint="Pass --secret VALUE, or --secret '${ENV_VAR}' to read it from the "
                "environment when sending.",
            )
        is_ref = ENV_REF.fullmatch(secret) is not None
        row = self.queue.add_subscription(
            dataset, url, secret_ref=secret if is_ref else None, description=description
        )
        if not is_ref:
            name = f"subscription.{row.id}.secret"
            self.ws.store.put_secret(name, self.ws.secrets.encrypt(secret))
            self.queue.set_subscription_secret(row.id, name)
            row.secret_name = name
        return row

    def list(self, dataset: str | None = None) -> list[SubscriptionRow]:
        return self.queue.subscriptions(dataset)

    def remove(self, subscription_id: int) -> SubscriptionRow:
        row = self.queue.remove_subscription(subscription_id)
        if row is None:
            ids = [str(r.id) for r in self.queue.subscriptions()]
            raise SubscriptionError(
                f"no subscription with id {subscription_id}",
                hint=("Subscriptions: " + ", ".join(ids)) if ids else "There are none.",
            )
        if row.secret_name:
            self.queue.delete_secret(row.secret_name)
        return row

    def secret_of(self, row: SubscriptionRow) -> str:
        where = f"subscription {row.id}"
        if row.secret_ref:
            return resolve_env_refs(row.secret_ref, where=where)
        token = self.ws.store.get_secret(row.secret_name or "")
        if token is None:
            raise SubscriptionError(f"the stored secret of {where} is missing")
        return self.ws.secrets.decrypt(token, where=where)


def payload_for(pipeline: str, run_id: str, dataset: str, commit: Commit) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "version": commit.version,
        "run_id": run_id,
        "pipeline": pipeline,
        "committed_at": commit.committed_at.isoformat(),
    }


def notify(
    ws: Workspace,
    pipeline: str,
    run_id: str,
    committed: Mapping[str, Commit],
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
) -> list[int]:
    """Send one notice per (subscription, committed dataset); the delivery ids."""
    subs = Subscriptions(ws)
    ids: list[int] = []
    for dataset, commit in committed.items():
        for row in subs.queue.subscriptions(dataset):
            payload = payload_for(pipeline, run_id, dataset, commit)
            delivery = subs.queue.add_delivery(row.id, dataset, commit.version, run_id, payload)
            ids.append(delivery)
            deliver(subs, row, delivery, payload, attempts=attempts, backoff=backoff)
    return ids


def redeliver_stale(ws: Workspace, now: datetime, *, age_seconds: float = 300.0) -> list[int]:
    """One more attempt for each notice left ``pending`` for ``age_seconds`` (its sender
    died between attempts); the scheduler calls this every pass. Returns the ids tried."""
    from datetime import timedelta

    subs = Subscriptions(ws)
    tried: list[int] = []
    for delivery in subs.queue.stale_deliveries(now - timedelta(seconds=age_seconds)):
        row = subs.queue.get_subscription(delivery.subscription_id)
        if row is None:
            subs.queue.record_attempt(
                delivery.id, status_code=None, error="subscription removed", final_status="failed"
            )
            continue
        give_up = delivery.attempts + 1 >= ATTEMPTS
        deliver(subs, row, delivery.id, delivery.payload, attempts=1, give_up=give_up)
        tried.append(delivery.id)
    return tried


def deliver(
    subs: Subscriptions,
    row: SubscriptionRow,
    delivery: int,
    payload: Mapping[str, Any],
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF_SECONDS,
    give_up: bool = True,
) -> bool:
    """POST ``payload`` to the subscriber, retrying; True once it answered 2xx.

    When the attempts run out the delivery is ``failed``, or stays ``pending`` for a
    later retry when not ``give_up``.
    """
    from headwater import __version__

    queue = subs.queue
    try:
        secret = subs.secret_of(row)
    except Exception as exc:
        message = exc.message if isinstance(exc, SubscriptionError) else type(exc).__name__
        queue.record_attempt(delivery, status_code=None, error=message, final_status="failed")
        log.error("webhook %s for %s: %s", row.id, row.dataset, message)
        return False
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"headwater/{__version__}",
        SIGNATURE_HEADER: sign(secret, body),
        "X-Headwater-Delivery": str(delivery),
    }
    for attempt in range(1, attempts + 1):
        code, error, retry = _post(row.url, body, headers)
        last = attempt == attempts or not retry
        gave_up = not retry or (last and give_up)
        if error is None:
            queue.record_attempt(delivery, status_code=code, error=None, final_status="delivered")
            log.info("webhook %s: %s v%s delivered", row.id, row.dataset, payload["version"])
            return True
        queue.record_attempt(
            delivery, status_code=code, error=error, final_status="failed" if gave_up else None
        )
        if gave_up:
            log.error("webhook %s: giving up after %s attempt(s): %s", row.id, attempt, error)
            return False
        if last:
            return False
        time.sleep(backoff * 2 ** (attempt - 1))
    return False


def _post(url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int | None, str | None, bool]:
    """(status code, error or None, whether to retry)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        code = int(exc.code)
        return code, f"HTTP {code}", code >= 500 or code == 429
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"cannot reach the URL: {reason}", True
    if 200 <= code < 300:
        return code, None, False
    return code, f"HTTP {code}", code >= 500
