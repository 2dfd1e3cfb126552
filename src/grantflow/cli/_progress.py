"""Progress bars on standard error: total, percentage, rate and time left.

A bar is drawn only when standard error is a terminal and the user did not pass
``--quiet``; otherwise `meter` yields a `Meter` that does nothing, so that pipes, logs
and CI output stay clean. Standard output is never touched: ``--json`` and TSV output
can be piped while the bar runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["Meter", "meter"]


class _RateColumn(ProgressColumn):
    """Items per second, e.g. ``1,234 rows/s`` (``?`` until anything is done)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.completed and task.elapsed:
            # One update so far (a short verify): the average since the start.
            speed = task.completed / task.elapsed
        if speed is None:
            return Text(f"? {self._unit}/s", style="progress.data.speed")
        shown = f"{speed:,.0f}" if speed >= 10 else f"{speed:.1f}"
        return Text(f"{shown} {self._unit}/s", style="progress.data.speed")


class Meter:
    """A handle on one progress bar; every method is a no-op when no bar is shown."""

    def __init__(self, progress: Progress | None = None, task: TaskID | None = None) -> None:
        self._progress = progress
        self._task = task

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn (callers may skip work, such as counting, otherwise)."""
        return self._progress is not None

    def advance(self, done: int) -> None:
        """Add `done` finished items."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, done)

    def set(self, completed: int, *, total: int | None = None) -> None:
        """Set the number of finished items (and the total, when it became known)."""
        if self._progress is not None and self._task is not None:
            if total is not None:
                self._progress.update(self._task, total=total)
            self._progress.update(self._task, completed=completed)

    def describe(self, description: str) -> None:
        """Change the label shown before the bar."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description)


def _columns(unit: str) -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TaskProgressColumn(),
        _RateColumn(unit),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


@contextmanager
def meter(label: str, total: int | None, *, unit: str, quiet: bool) -> Iterator[Meter]:
    """Draw a bar for `total` items on standard error while the block runs.

    Nothing is drawn with `quiet` or when standard error is not a terminal. The last
    state of the bar stays on the screen, so the elapsed work can still be read.
    """
    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield Meter()
        return
    progress = Progress(*_columns(unit), console=console, transient=False)
    with progress:
        task = progress.add_task(label, total=total)
        yield Meter(progress, task)
