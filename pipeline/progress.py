"""Progress bars on stderr: one per stage (cells done) and one per running cell."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .dag import HIT, CellPlan


class ProgressView:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.stage_tasks: dict[str, Any] = {}
        self.cell_tasks: dict[str, Any] = {}
        self.announced: set[tuple[str, str]] = set()  # (cell, note) lines already printed

    def __enter__(self) -> "ProgressView":
        self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bars.stop()

    def start(self, plans: list[CellPlan]) -> None:
        totals: dict[str, list[int]] = {}
        for plan in plans:
            done_total = totals.setdefault(plan.cell.stage, [0, 0])
            done_total[1] += 1
            done_total[0] += plan.status == HIT
        for stage, (done, total) in totals.items():
            cached = done == total
            task = self.bars.add_task(
                f"[bold]{stage}[/] cells" + (" (cached)" if cached else ""), total=total, completed=done
            )
            if cached:
                self.bars.update(task, completed=done)  # marks it finished ...
                self.bars.stop_task(task)  # ... and stops its clock at 0:00:00
            self.stage_tasks[stage] = task

    def begin(self, plan: CellPlan) -> None:
        label = str(plan.cell.ref)
        self.cell_tasks[label] = self.bars.add_task(f"  {label}: {plan.reason}", total=None)

    def update(self, events: dict[str, dict[str, Any]]) -> None:
        for label, event in events.items():
            task = self.cell_tasks.get(label)
            if task is None:
                continue
            description = event.get("description")
            for note in event.get("notes", []):
                if (label, note) not in self.announced:  # printed as a line, so pipes and log files show it too
                    self.announced.add((label, note))
                    self.console.print(f"{label}: {note}", highlight=False)
            self.bars.update(
                task,
                completed=event.get("completed", 0),
                total=event.get("total"),
                description=f"  {label}: {description}" if description else None,
            )

    def finish(self, plan: CellPlan, ok: bool, error: str | None = None, detail: str | None = None) -> None:
        """A cell is done; a failed one's `error` line and its traceback (`detail`) go into the run's log."""
        label = str(plan.cell.ref)
        task = self.cell_tasks.pop(label, None)
        if task is not None:
            self.bars.remove_task(task)
        if plan.status != HIT:
            mark = "[green]done[/]" if ok else f"[red]failed[/] {escape(error or '')}"
            self.console.print(f"{label}: {mark}", highlight=False, soft_wrap=True)
            if detail:
                self.console.print(escape(detail), highlight=False, soft_wrap=True, style="dim")
        stage_task = self.stage_tasks.get(plan.cell.stage)
        if stage_task is not None and plan.status != HIT:
            self.bars.advance(stage_task)
