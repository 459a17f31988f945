"""`headwater alerts list|test`: incidents and channel checks."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from headwater.cli._state import console, open_workspace

app = typer.Typer(help="Alert incidents and channels (configured under alerts: in headwater.yaml).")


@app.command("list")
def list_(
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents still open.")] = False,
    limit: Annotated[int, typer.Option(help="Incidents shown.")] = 50,
) -> None:
    """Incidents, newest first: rule, subject, status, occurrences, whether it was notified."""
    from headwater.quality.alerts import list_incidents

    with open_workspace() as ws:
        rows = list_incidents(ws.store, status="open" if open_only else None, limit=limit)
        if not rows:
            console.print("no incidents" + (" open" if open_only else ""))
            return
        table = Table()
        for name in ("id", "rule", "subject", "status", "seen", "notified", "opened", "summary"):
            table.add_column(name, justify="right" if name in ("id", "seen") else "left")
        for row in rows:
            table.add_row(
                str(row.id),
                escape(row.rule),
                escape(row.subject),
                row.status,
                str(row.occurrences),
                "yes" if row.notified else "throttled",
                f"{row.opened_at:%Y-%m-%d %H:%M:%S}",
                escape(row.summary),
            )
        console.print(table)


@app.command("test")
def test(
    channel: Annotated[str, typer.Argument(help="Channel name under alerts.channels.")],
) -> None:
    """Send a test notification through a channel and report the delivery."""
    from headwater.quality.alerts import Alerts

    with open_workspace() as ws:
        alerts = Alerts(ws.store, ws.settings.alerts, workspace=ws.settings.name)
        delivery = alerts.test(channel)
    if delivery.ok:
        console.print(
            f"sent a test notification through `{escape(channel)}` ({delivery.attempts} attempt(s))"
        )
        return
    console.print(
        f"[red]delivery through `{escape(channel)}` failed[/] after {delivery.attempts} "
        f"attempt(s): {escape(delivery.error or 'unknown error')}"
    )
    raise typer.Exit(1)


@app.command("check")
def check() -> None:
    """Judge freshness now and alert on breaches and recoveries.

    Every dataset with a quality.freshness max_age is measured. Run it from cron or the
    scheduler: stale data is data no run writes, so no run would notice.
    """
    from headwater.quality.monitor import RunMonitor

    with open_workspace() as ws:
        outcomes = RunMonitor(ws).check_freshness()
    if not outcomes:
        console.print("no alert changes")
        return
    for outcome in outcomes:
        sent = ", ".join(
            f"{d.channel} {'ok' if d.ok else 'failed: ' + (d.error or '')}"
            for d in outcome.deliveries
        )
        console.print(
            f"{escape(outcome.rule)} {escape(outcome.subject)}: {outcome.action}"
            + (f" ({escape(sent)})" if sent else "")
        )
