"""`headwater subscriptions add|list|remove|deliveries`: signed webhooks on new versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, open_workspace

app = typer.Typer(
    help="Notify a URL (a signed JSON POST) when a dataset gets a new version.",
    no_args_is_help=True,
)


@app.command("add")
def add(
    dataset: Annotated[str, typer.Option(help="The dataset to watch, `zone.name`.")],
    url: Annotated[str, typer.Option(help="Where to POST the notice (http or https).")],
    secret: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            help="Signs each notice (HMAC-SHA256). Stored encrypted with the workspace key; "
            "a '${ENV_VAR}' reference is kept as such. Asked for when left out.",
        ),
    ],
    description: Annotated[str | None, typer.Option(help="What the subscriber is.")] = None,
) -> None:
    """Subscribe URL to new versions of DATASET."""
    from headwater.pipelines.scheduling.webhooks import Subscriptions

    with open_workspace() as ws:
        row = Subscriptions(ws).add(dataset, url, secret, description=description)
        console.print(
            f"subscription {row.id}: {escape(row.url)} is notified of new versions of "
            f"{escape(row.dataset)}"
        )


@app.command("list")
def list_(
    dataset: Annotated[str | None, typer.Option(help="Only subscriptions to this dataset.")] = None,
) -> None:
    """Every subscription (secrets are never shown)."""
    from headwater.pipelines.scheduling.webhooks import Subscriptions

    with open_workspace() as ws:
        subs = Subscriptions(ws)
        table = Table()
        for col in ("id", "dataset", "url", "secret", "delivered", "failed", "description"):
            table.add_column(col)
        for row in subs.list(dataset):
            deliveries = subs.queue.deliveries(subscription_id=row.id)
            table.add_row(
                str(row.id),
                escape(row.dataset),
                escape(row.url),
                escape(row.secret_ref) if row.secret_ref else "stored encrypted",
                str(sum(d.status == "delivered" for d in deliveries)),
                str(sum(d.status == "failed" for d in deliveries)),
                escape(row.description or ""),
            )
        console.print(table if table.rows else "no subscriptions")


@app.command("remove")
def remove(
    subscription: Annotated[int, typer.Argument(help="Subscription id (see `list`).")],
) -> None:
    """Remove a subscription and its stored secret."""
    from headwater.pipelines.scheduling.webhooks import Subscriptions

    with open_workspace() as ws:
        row = Subscriptions(ws).remove(subscription)
        console.print(f"removed subscription {row.id} ({escape(row.dataset)} -> {escape(row.url)})")


@app.command("deliveries")
def deliveries(
    subscription: Annotated[int | None, typer.Option(help="Only this subscription.")] = None,
) -> None:
    """Notices sent: dataset version, run, status and every attempt's answer."""
    from headwater.pipelines.scheduling.queue import SchedulerStore

    with open_workspace() as ws:
        table = Table()
        for col in ("id", "sub", "dataset", "version", "run", "status", "attempts"):
            table.add_column(col)
        for row in SchedulerStore(ws.store).deliveries(subscription_id=subscription):
            answers = ", ".join(
                str(a.get("status_code") or a.get("error") or "?") for a in row.attempt_log
            )
            table.add_row(
                str(row.id),
                str(row.subscription_id),
                escape(row.dataset),
                str(row.version),
                (row.run_id or "")[:12],
                row.status,
                escape(answers),
            )
        console.print(table if table.rows else "no deliveries yet")
