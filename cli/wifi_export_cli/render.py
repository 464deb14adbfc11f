"""How runs look on a terminal: Rich tables and progress bars (never hand-drawn ones).

Everything shown comes from S3 or the API, so the CLI prints through one console,
`PlainConsole`: no string is ever read as Rich markup, and every string loses its
control characters and escape sequences (`exporter.redaction.printable`) on its
way to the terminal. `text` is the one way to make a styled `Text` of such a string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from exporter.redaction import printable
from wifi_export_cli.runs import RunView

STYLES = {"running": "cyan", "succeeded": "green", "failed": "red", "cancelled": "yellow"}


class PlainConsole(Console):
    """The CLI's console: markup, emoji codes and highlighting off, and every string
    (a table cell, a printed line) made printable before Rich sees it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        kwargs.update(markup=False, emoji=False)
        return super().render_str(printable(text), **kwargs)


def text(value: Any, style: str = "") -> Text:
    """A stored or answered value as a styled `Text`: printable, never markup."""
    return Text(printable(str(value)), style=style)


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover - unreachable


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def started_line(view: RunView) -> Text:
    """`wifi-export run`: one line per run started."""
    basis = f" ({view.time_basis})" if view.time_basis else ""
    return Text.assemble(
        "started run ",
        text(view.run_id, "bold"),
        text(f": brand {view.brand_id} {view.start_date}..{view.end_date}{basis}, "),
        f"{view.windows_total} window(s)",
    )


def status_text(status: str, cancel_requested: bool = False) -> Text:
    label = f"{status} (cancel requested)" if cancel_requested and status == "running" else status
    return text(label, f"bold {STYLES.get(status, '')}")


def rows_line(view: RunView) -> str:
    rate = view.rate()
    text = f"{view.rows:,} rows, {size(view.bytes)}" if view.bytes else f"{view.rows:,} rows"
    if rate is not None and not view.final:
        text += f", {rate:,.0f} rows/s"
    return text


def eta_line(view: RunView) -> str:
    if view.final:
        return f"took {duration(view.duration_s)}"
    eta = view.eta_s()
    return f"ETA {duration(eta)}" if eta is not None else "ETA after the first window"


def run_panel(view: RunView) -> Group:
    """`wifi-export status RUN_ID`: everything about one run."""
    head = Text.assemble(("run ", "dim"), text(view.run_id, "bold"), "  ")
    head.append_text(status_text(view.status, view.cancel is not None))
    details = Table.grid(padding=(0, 2))
    details.add_column(style="dim", no_wrap=True)
    details.add_column()
    basis = f" ({view.time_basis})" if view.time_basis else ""
    details.add_row(
        "brand",
        f"{view.brand_id}  {view.start_date}..{view.end_date}{basis}  {view.trigger or ''}".strip(),
    )
    if view.selection:
        details.add_row("selection", ", ".join(f"{k}={v}" for k, v in view.selection.items()))
    details.add_row("started", view.started_at or "-")
    bar = Table.grid(padding=(0, 1))
    bar.add_column(width=40)
    bar.add_column(no_wrap=True)
    bar.add_row(
        ProgressBar(total=max(view.windows_total, 1), completed=view.windows_done, width=40),
        f"{view.windows_done}/{view.windows_total}",
    )
    details.add_row("windows", bar)
    details.add_row("rows", rows_line(view))
    if view.api_calls:
        details.add_row("API", f"{view.api_calls:,} calls, {view.retries:,} retries")
    details.add_row("time", eta_line(view))
    if view.last_checkpoint and not view.final:
        cp = view.last_checkpoint
        details.add_row(
            "last checkpoint", f"window {cp.get('window')} step {cp.get('step')} at {cp.get('at')}"
        )
    if view.refused:
        shown = ", ".join(map(str, view.refused[:20]))
        more = f" (+{len(view.refused) - 20} more)" if len(view.refused) > 20 else ""
        details.add_row("refused ids", shown + more)
    if view.cancel is not None and not view.final:
        details.add_row(
            "cancel", f"requested at {view.cancel.get('requestedAt')}: stops at its next step"
        )
    if view.error:
        details.add_row("error", text(view.error, "red"))
    if view.manifest:
        details.add_row("manifest", view.manifest)
    return Group(head, details)


def runs_table(views: Sequence[RunView], skipped: int = 0) -> Table:
    """`wifi-export runs`: newest first; `skipped` malformed history entries counted."""
    note = f"{skipped} malformed history entr{'y' if skipped == 1 else 'ies'} skipped"
    table = Table(box=None, header_style="bold", pad_edge=False, caption=note if skipped else None)
    for name, justify in (
        ("run id", "left"),
        ("brand", "right"),
        ("range", "left"),
        ("status", "left"),
        ("windows", "right"),
        ("rows", "right"),
        ("duration", "right"),
        ("trigger", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for view in views:
        table.add_row(
            view.run_id,
            str(view.brand_id),
            f"{view.start_date}..{view.end_date}",
            status_text(view.status, view.cancel is not None),
            f"{view.windows_done}/{view.windows_total}",
            f"{view.rows:,}",
            duration(view.elapsed_s()),
            view.trigger or "-",
        )
    return table


class Follower:
    """Live progress bars for `status --follow` and `run --follow`, one per run."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=32),
            MofNCompleteColumn(),
            TextColumn("windows"),
            TextColumn("{task.fields[rows]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[state]}"),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Follower:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def show(self, view: RunView) -> None:
        rows, eta = rows_line(view), eta_line(view)
        state = status_text(view.status, view.cancel is not None).markup
        task = self._tasks.get(view.run_id)
        if task is None:
            self._tasks[view.run_id] = self.progress.add_task(
                printable(view.run_id),
                total=max(view.windows_total, 1),
                completed=view.windows_done,
                rows=rows,
                eta=eta,
                state=state,
            )
        else:
            self.progress.update(task, completed=view.windows_done, rows=rows, eta=eta, state=state)
