"""How a long loop reports its progress without knowing who listens.

A loop that takes seconds (the collateral bisection, figure rendering, PDF pages, stress
paths) accepts an optional :class:`Progress` callback and calls it as it goes:
``progress(step, done, total)`` with a short step name (``"figures"``), the units done so
far and the units in all. Per step, ``done`` never decreases and the last call has
``done == total``; ``total`` may be revised while a loop runs when it is only estimated
(the bisection's number of kernel passes). The default, ``None``, reports nothing.
The command line turns the calls into ``tqdm`` bars on a terminal
(:mod:`backtest.cli`); domain modules never print.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "report"]


class Progress(Protocol):
    """``progress(step, done, total)``: ``done`` of ``total`` units of ``step`` are finished."""

    def __call__(self, step: str, done: int, total: int) -> None: ...


def report(progress: Progress | None, step: str, done: int, total: int) -> None:
    """Call ``progress`` (when given) with ``done`` clipped to ``[0, total]``."""
    if progress is not None:
        total = max(int(total), 0)
        progress(step, min(max(int(done), 0), total), total)
