"""Run one piece of a command in a forked process beside the rest, and take its outcome back.

``hedgebt demo`` replays two scenarios. Most of a replay is single-threaded (reading and
aligning the data, the index, the hedge ratios, the bar loop); the report draws its figures
on every core. :class:`ForkedRun` lets the second scenario run in a child forked from the
command while the first one is replayed and writes its report, so both cores stay busy. The
child is forked once the first scenario is prepared (or, on a first run, once its bar loop
is compiled), so it inherits the kernels compiled so far: none is compiled twice.

What the child returns travels through a pipe as one pickled message, read when the
command asks for it (:meth:`ForkedRun.result`):

* its console lines, printed by the command after its own (the output order does not
  depend on which process finished first);
* the warnings it caught (the command prints them as its own);
* or its error: a :class:`~backtest.errors.HedgeBTError` is raised again in the command with
  the same message and exit code; anything else as :class:`ForkedFailure` with the child's
  traceback.

Safety: the child never returns into the command's code (it leaves with :func:`os._exit`,
so no ``finally`` of the command runs twice); it runs the work with ``SIGTERM`` raising
``SystemExit`` so its own clean-up runs; leaving the ``with`` block of the command ends a
child that is still running (``SIGTERM``, then ``SIGKILL`` after 10 s) and reaps it, before
the command's own clean-up (an output folder that is removed is no longer written to).
Only where ``os.fork`` exists (Linux, macOS); elsewhere :meth:`ForkedRun.available` is False
and the command runs the work itself.

:func:`gc_frozen` (used here and for the report's figure workers): a forked process shares
its parent's memory until it writes to it, and Python's cyclic garbage collector writes to
every object it examines. A child that allocates (matplotlib does, a lot) collects often and
so copied, page by page, every object the parent held, and examined them all each time: the
report's figure workers spent 25-35 % more CPU than drawing the same figures in one process.
Objects that exist when the fork happens are moved out of the collector's reach first
(:func:`gc.freeze`) and back in the parent right after (:func:`gc.unfreeze`); in the child
they stay frozen (they live as long as the child anyway).
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from backtest.atomic import raise_if_terminated, terminate_signal
from backtest.errors import HedgeBTError

__all__ = ["ForkedRun", "ForkedFailure", "Outcome", "gc_frozen"]

#: how long a child gets to end after SIGTERM before it is killed (seconds)
_TERM_GRACE_S = 10.0


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Within the block, the objects that exist at its start are outside the cyclic garbage
    collector (:func:`gc.freeze`); fork inside it (see the module notes). Nested blocks are
    fine: the collector is unfrozen when the outermost one ends."""
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


class ForkedFailure(RuntimeError):
    """The forked work failed with an error that is not a user error (its traceback is the message)."""


@dataclass(frozen=True)
class Outcome:
    """What the forked work left for the command: its console lines and caught warnings."""

    lines: tuple[tuple[Any, ...], ...] = ()  # what its console recorded (the console replays them)
    warnings: tuple[str, ...] = ()


@dataclass
class _Message:
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: tuple[str, str, int] | None = None  # (kind "user" | "crash", text, exit code)


class ForkedRun:
    """``work(lines)`` in a forked child; ``lines`` is the list its console appends to.

    Use as a context manager around the rest of the command::

        with ForkedRun.start(work) as child:
            ...  # the command's own work, on the other core
            outcome = child.result()
    """

    def __init__(self, pid: int, fd: int) -> None:
        self._pid: int | None = pid
        self._fd: int | None = fd

    @staticmethod
    def available() -> bool:
        return hasattr(os, "fork")

    @classmethod
    def start(cls, work: Callable[[list[tuple[Any, ...]]], Any]) -> ForkedRun:
        r, w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        with gc_frozen():
            pid = os.fork()
            if pid == 0:  # the child: never returns (so its objects stay frozen)
                os.close(r)
                _child(work, w)
        os.close(w)
        return cls(pid, r)

    def result(self) -> Outcome:
        """Wait for the child; its outcome, or its error raised here."""
        assert self._fd is not None and self._pid is not None
        chunks = []
        with os.fdopen(self._fd, "rb") as f:
            self._fd = None
            while chunk := f.read(1 << 16):
                chunks.append(chunk)
        _, status = os.waitpid(self._pid, 0)
        self._pid = None
        code = os.waitstatus_to_exitcode(status)
        if not chunks:
            raise ForkedFailure(f"the forked run ended without a result (exit code {code})")
        msg: _Message = pickle.loads(b"".join(chunks))
        if msg.error is not None:
            kind, text, exit_code = msg.error
            if kind == "user":
                err = HedgeBTError(text)
                err.exit_code = exit_code
                raise err
            raise ForkedFailure(text)
        return Outcome(tuple(msg.lines), tuple(msg.warnings))

    def stop(self) -> None:
        """End the child if it still runs, and reap it (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + _TERM_GRACE_S
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    def __enter__(self) -> ForkedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _child(work: Callable[[list[tuple[Any, ...]]], Any], fd: int) -> None:
    """Run ``work`` and send its outcome through ``fd``; leave with :func:`os._exit`."""
    msg = _Message()
    status = 0

    try:
        signal.signal(signal.SIGTERM, terminate_signal)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            work(msg.lines)
            raise_if_terminated()  # a SIGTERM whose SystemExit was swallowed (backtest.atomic._Termination)
        msg.warnings = [" ".join(str(w.message).split()) for w in caught]
    except HedgeBTError as exc:
        msg.error = ("user", str(exc), exc.exit_code)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
        msg.error = ("crash", f"the forked run was ended (exit code {status})", status)
    except BaseException:  # noqa: BLE001 - reported to the command, which raises it
        msg.error = ("crash", traceback.format_exc(), 1)
        status = 1
    try:
        data = pickle.dumps(msg)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:  # noqa: BLE001 - the command sees a missing result
        status = status or 1
    finally:
        os._exit(status)
