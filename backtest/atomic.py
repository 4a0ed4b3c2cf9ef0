"""The one atomic writer: every file and folder hedgebt writes goes through here.

Files (:func:`atomic_file`, :func:`write_bytes`, :func:`write_text`)
    written to a temporary name in the same folder (``.NAME.tmp-PID-TOKEN``), ``fsync``-ed,
    moved onto the target with :func:`os.replace` and the folder ``fsync``-ed, so a reader sees
    the old file or the whole new one, and a crash leaves at most a temporary file that the next
    write of the same name removes (its process being gone). A file is never written through a
    symbolic link: a target whose folder is a link is refused.
Output folders (:class:`OutputDir`)
    built in a temporary sibling ``.NAME.tmp-PID-TOKEN`` and claimed at the end with one
    ``renameat2`` call (``RENAME_NOREPLACE`` for a new folder, ``RENAME_EXCHANGE`` to replace an
    existing one), after checking that the target is in the state it was in when the run started.
    A folder that appeared or changed meanwhile is refused (exit 2) unless ``force``; ``force``
    never replaces the current directory or one of its parents, the home directory, or a folder
    holding the run's own config or inputs. Every file in the temporary folder is ``fsync``-ed
    before the claim. On any exit path (error, Ctrl-C, ``SIGTERM`` via :func:`terminate_as_exit`)
    the temporary folder is removed; temporary folders of a process that no longer exists are
    removed by the next run into the same parent, with a note on stderr.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Final

from backtest.errors import OutputError

__all__ = [
    "MAX_NAME_BYTES",
    "OutputDir",
    "atomic_file",
    "write_bytes",
    "write_text",
    "fsync_dir",
    "fsync_tree",
    "clean_stale",
    "staged_files",
    "terminate_as_exit",
    "terminate_signal",
    "raise_if_terminated",
    "uninterrupted",
    "mark_written",
    "written_note",
]

#: Longest accepted output file/folder name, in bytes (the temporary name adds up to 40 more
#: and the usual file-system limit is 255).
MAX_NAME_BYTES: Final[int] = 200
_TMP: Final[str] = ".tmp-"
_AT_FDCWD: Final[int] = -100
_RENAME_NOREPLACE: Final[int] = 1
_RENAME_EXCHANGE: Final[int] = 2


# -- low level ------------------------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    """``fsync`` a folder (makes renames inside it durable); ignored where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """``fsync`` every regular file and folder under ``root`` (symbolic links are not followed)."""
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            p = Path(dirpath, name)
            if not p.is_symlink():
                _fsync_file(p)
        fsync_dir(Path(dirpath))


def _load_renameat2():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False when the platform or file system lacks it."""
    if _renameat2 is None:  # pragma: no cover
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # pragma: no cover
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _tmp_name(name: str) -> str:
    return f".{name}{_TMP}{os.getpid()}-{secrets.token_hex(4)}"


#: a path part that :func:`_tmp_name` made
_TMP_PART: Final = re.compile(r"\..+" + re.escape(_TMP) + r"\d+-[0-9a-f]{8}")  # token_hex(4): 8 hex digits


def clean_stale(parent: Path, name: str, *, report: bool = True) -> list[Path]:
    """Remove ``.NAME.tmp-PID-*`` leftovers in ``parent`` whose process ``PID`` is gone.

    Returns the removed paths (and notes each on stderr when ``report``).
    """
    removed: list[Path] = []
    prefix = f".{name}{_TMP}"
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
        if report:
            print(f"hedgebt: removed {path}, left by process {pid_text} which no longer runs", file=sys.stderr)
    return removed


class _Termination:
    """The ``SIGTERM`` or ``SIGINT`` this process received, if any (a signal is process-wide, so is
    this record).

    A handler's exception can be swallowed: Python calls the handler between bytecodes, and when
    that is inside a callback whose exceptions are only printed (``os.fork``'s at-fork hooks, such
    as ``logging``'s, a ``__del__``, a weakref callback) the run would go on and write its output
    after all. So the handlers record the signal before raising, every commit point
    (:func:`atomic_file`, :func:`staged_files`, :class:`OutputDir`) calls
    :func:`raise_if_terminated` before moving anything into place, and :func:`terminate_as_exit`
    raises it at the end of its block. Inside :func:`uninterrupted` (a claim, a set of moves) the
    handlers only record; :func:`mark_written` notes what is in place, for the command's last line.
    """

    signum: int | None = None
    #: inside :func:`uninterrupted`: a signal is recorded and raised when the block ends
    deferred: bool = False
    #: what a command has moved into place (:func:`mark_written`), for its last line
    written: list[str] = []


def mark_written(path: str | Path) -> None:
    """Record that ``path`` (an output folder, a dataset, a re-rendered report) is in place, so a
    signal after it is not reported as "no output was written" (:func:`written_note`). Only within
    :func:`terminate_as_exit` (a command; the API outside one keeps no record). A path
    inside a temporary folder (one being built, :func:`_tmp_name`) is not recorded: it is in place
    only once that folder is claimed (the demo's two scenario folders, a compare report)."""
    if signal.getsignal(signal.SIGTERM) is not terminate_signal:  # not a command (the API in a notebook)
        return
    if any(_TMP_PART.fullmatch(part) for part in Path(os.path.abspath(path)).parts):
        return
    _Termination.written.append(str(path))


def written_note() -> str:
    """How an interrupted command ends its last line: ``no output was written``, or the outputs that
    were already in place when the signal came."""
    if not _Termination.written:
        return "no output was written"
    return "the output was already written: " + ", ".join(_Termination.written)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Within the block, ``SIGTERM`` and ``SIGINT`` are recorded but not raised (a claim or a set of
    moves is never cut in half); a signal that came meanwhile is raised when the block ends
    normally. Blocking the signals would not do: a thread of numba's or pyarrow's pool that does not
    block them receives them, and Python runs the handler in the main thread anyway."""
    before = _Termination.deferred
    _Termination.deferred = True
    try:
        yield
    finally:
        _Termination.deferred = before
    if not before:
        raise_if_terminated()


def raise_if_terminated() -> None:
    """Raise what a recorded signal raises (see :class:`_Termination`): ``KeyboardInterrupt`` for
    ``SIGINT``, ``SystemExit(128 + signum)`` for ``SIGTERM``; nothing when none was received."""
    if _Termination.signum == signal.SIGINT:
        raise KeyboardInterrupt
    if _Termination.signum is not None:
        raise SystemExit(128 + _Termination.signum)


def terminate_signal(signum: int, _frame: object) -> None:
    """``SIGTERM`` and ``SIGINT`` handler: record the signal (:class:`_Termination`) and, outside
    :func:`uninterrupted`, raise what :func:`raise_if_terminated` raises for it (``SystemExit(143)``,
    or ``KeyboardInterrupt`` as Python's default ``SIGINT`` handler does)."""
    _Termination.signum = signum
    if not _Termination.deferred:
        raise_if_terminated()


def _quiet_unraisable(previous: Any) -> Any:
    """An ``unraisablehook`` that drops the ``SystemExit`` / ``KeyboardInterrupt`` of a recorded signal
    (raised inside a finaliser or callback, printed as "Exception ignored in ...": the signal is
    raised again at the next commit point) and passes everything else to ``previous``."""
    def hook(unraisable: Any) -> None:
        if _Termination.signum is not None and issubclass(unraisable.exc_type, (SystemExit, KeyboardInterrupt)):
            return
        previous(unraisable)

    return hook


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Within the block, ``SIGTERM`` raises ``SystemExit(143)`` so ``finally``/``__exit__`` clean up.

    Only in the main thread (elsewhere a no-op); the previous handlers are restored afterwards.
    ``SIGINT`` still raises ``KeyboardInterrupt`` (when Python's default handler is in place, it
    is replaced by one that also records the signal). A signal whose exception was swallowed
    (:class:`_Termination`) is raised when the block ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = _Termination.signum
    if before is None:  # the outermost block: a new command
        _Termination.written = []
    previous = signal.signal(signal.SIGTERM, terminate_signal)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, terminate_signal)
    previous_hook, sys.unraisablehook = sys.unraisablehook, _quiet_unraisable(sys.unraisablehook)
    try:
        yield
        raise_if_terminated()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        sys.unraisablehook = previous_hook
        _Termination.signum = before  # None unless an enclosing block's signal is pending


# -- files ----------------------------------------------------------------------------------------


def _check_name(path: Path) -> None:
    if len(os.fsencode(path.name)) > MAX_NAME_BYTES:
        raise OutputError(
            f"{str(path)[:60]}...: name is {len(os.fsencode(path.name))} bytes long; the limit is {MAX_NAME_BYTES}"
        )


@contextmanager
def atomic_file(path: str | Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, move it onto ``path``.

    The temporary file is ``fsync``-ed, renamed with :func:`os.replace` and the folder
    ``fsync``-ed. It is removed when the block raises (including ``SystemExit`` from
    :func:`terminate_as_exit`). ``mode`` defaults to the existing file's mode, else ``0o644``.

    Raises
    ------
    OutputError
        If ``path``'s folder is a symbolic link (outputs never follow links), ``path`` is a
        folder, or its name is longer than :data:`MAX_NAME_BYTES`.
    """
    path = Path(path)
    _check_name(path)
    parent = path.parent
    if parent.is_symlink():
        raise OutputError(f"{parent}: is a symbolic link (to {os.readlink(parent)}); hedgebt does not write through links")
    if path.is_dir() and not path.is_symlink():
        raise OutputError(f"{path}: is a folder, expected a file")
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale(parent, path.name)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.is_file() and not path.is_symlink() else 0o644
    tmp = parent / _tmp_name(path.name)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer did not create the temporary file")
        _fsync_file(tmp)
        os.chmod(tmp, mode)
        raise_if_terminated()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(parent)


@contextmanager
def staged_files(folder: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder inside ``folder``; when the block succeeds, move every file
    written into it onto the same relative path in ``folder``, each with :func:`os.replace`.

    For writing several files into an existing folder (``hedgebt report`` re-rendering a result):
    nothing in ``folder`` is replaced until every file is written, so a failure leaves the folder
    as it was instead of half old, half new. The temporary folder (``.staging.tmp-PID-TOKEN``) is
    removed on every exit path; one left by a process that no longer runs is removed by the next
    call. The files are ``fsync``-ed before the moves, the folders after. A folder this call
    created is removed again when the block fails and leaves it empty.

    Raises
    ------
    OutputError
        If ``folder``, or a folder under it that a file goes into, is a symbolic link; if
        ``folder`` is a file or cannot be created.
    """
    folder = Path(folder)
    if folder.is_symlink():
        raise OutputError(f"{folder}: is a symbolic link (to {os.readlink(folder)}); hedgebt does not write through links")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file, expected a folder")
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    clean_stale(folder, "staging")
    stage = folder / _tmp_name("staging")
    stage.mkdir()
    done = False
    try:
        yield stage
        fsync_tree(stage)
        files = sorted(p.relative_to(stage) for p in stage.rglob("*") if p.is_file() and not p.is_symlink())
        for sub in sorted({f.parent for f in files}):
            if (folder / sub).is_symlink():
                raise OutputError(f"{folder / sub}: is a symbolic link; hedgebt does not write through links")
        raise_if_terminated()
        with uninterrupted():  # all the moves or none: a signal now is raised after the last one
            for rel in files:
                (folder / rel.parent).mkdir(parents=True, exist_ok=True)
                os.replace(stage / rel, folder / rel)
            for sub in sorted({f.parent for f in files}, key=lambda d: len(d.parts), reverse=True):
                fsync_dir(folder / sub)
            done = True
            mark_written(folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made and not done and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # the folder this call made, left empty by a failure


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically, ``\\n`` line ends (see :func:`atomic_file`)."""
    return write_bytes(path, text.encode("utf-8"))


# -- output folders -------------------------------------------------------------------------------


def _state(path: Path) -> tuple | None:
    """What identifies a folder's state: None if absent, else (kind, device, inode, mtime, listing)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    listing: tuple[str, ...] = ()
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            listing = tuple(sorted(os.listdir(path)))
        except OSError:
            listing = ("<unreadable>",)
    return (st.st_mode >> 12, st.st_dev, st.st_ino, st.st_mtime_ns, listing)


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


class OutputDir:
    """An output folder claimed atomically at the end of a run.

    Use: ``out = OutputDir(path, force=..., protect=[config]); out.check()`` before the
    expensive work (records the target's state), ``out.protect(inputs)`` once the inputs are
    known, then ``with out as tmp: write into tmp``. On success the temporary folder becomes
    ``path``; on any exception it is removed and ``path`` is untouched.

    Parameters
    ----------
    target : str or Path
        The output folder (its parent is created if missing).
    force : bool
        Replace a non-empty folder, or one that appeared or changed during the run.
    protect : iterable of path
        Files/folders that ``force`` must never delete (the run's config and inputs).

    Raises
    ------
    OutputError
        Empty path, ``.``/``..``/the current directory or one of its parents, a symbolic link
        (dangling or not), a name longer than :data:`MAX_NAME_BYTES`, a file on the way
        (``file/sub``), an unwritable parent, a non-empty folder without ``force``, a ``force``
        that would delete home, cwd or a protected path; at the end, a folder that appeared or
        changed since :meth:`check` (without ``force``).
    """

    def __init__(self, target: str | Path, *, force: bool = False, protect: Iterable[str | Path] = ()) -> None:
        self.raw = str(target)
        self.target = Path(target)
        self.force = force
        self.protected: list[Path] = []
        self.tmp: Path | None = None
        self._start: tuple | None = None
        self._checked = False
        self._made: list[Path] = []
        self.protect(protect)

    # -- checks -----------------------------------------------------------------------------------

    def protect(self, paths: Iterable[str | Path]) -> None:
        """Add paths that ``force`` must never delete; re-checks the target if already checked."""
        for p in paths:
            if str(p):
                self.protected.append(Path(os.path.abspath(Path(p).expanduser())))
        if self._checked:
            self._check_force_guard()

    def check(self) -> None:
        """Refuse an unsafe target now (call before expensive work) and record its state."""
        try:
            self._check()
        except OSError as exc:  # e.g. a path component over the file system's name limit
            shown = self.raw if len(self.raw) <= 80 else self.raw[:77] + "..."
            raise OutputError(f"{shown}: unusable output path ({exc.strerror})") from None

    def _check(self) -> None:
        t, raw = self.target, self.raw
        if not raw.strip():
            raise OutputError("output path is empty; name a folder, e.g. --out results")
        if t.name in ("", ".", "..") or raw.rstrip("/").endswith(("/.", "/..")) or raw.rstrip("/") in (".", ".."):
            raise OutputError(f"{raw}: output path must name a new folder, not '.' or '..'")
        _check_name(t)
        if t.is_symlink():
            dest = os.readlink(t)
            state = "dangling " if not t.exists() else ""
            raise OutputError(f"{t}: output path is a {state}symbolic link (to {dest}); pass a real folder path")
        ancestor = t.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            if ancestor.is_symlink():
                raise OutputError(f"{ancestor}: is a dangling symbolic link; cannot create {t} below it")
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(f"{t}: cannot create the output folder: {ancestor} is a file, not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise OutputError(f"{t}: cannot create the output folder: {ancestor} is not writable")
        if t.exists() and not t.is_dir():
            raise OutputError(f"{t}: output path is a file, expected a folder")
        if t.is_dir() and not os.access(t, os.R_OK | os.W_OK | os.X_OK):
            raise OutputError(f"{t}: output folder exists and is not writable")
        absolute = Path(os.path.abspath(t))
        if _is_within(Path.cwd(), absolute) or _is_within(Path.cwd().resolve(), t.resolve()):
            raise OutputError(f"{raw}: output path is the current directory or one of its parents; name a new folder")
        if t.is_dir() and any(t.iterdir()) and not self.force:
            raise OutputError(f"{t}: output folder exists and is not empty; pass --force to replace it")
        self._checked = True
        self._start = _state(t)
        self._check_force_guard()

    def _check_force_guard(self) -> None:
        t = self.target
        if not t.exists():
            return
        here = t.resolve()
        home = Path.home().resolve()
        if _is_within(home, here):
            raise OutputError(f"{t}: refusing to replace the home directory or a parent of it")
        for p in self.protected:
            if _is_within(p, Path(os.path.abspath(t))) or _is_within(p.resolve(), here):
                raise OutputError(f"{t}: refusing to replace a folder that holds the run's own input {p}")

    # -- claim ------------------------------------------------------------------------------------

    def __enter__(self) -> Path:
        if not self._checked:
            self.check()
        parent = Path(os.path.abspath(self.target)).parent
        missing = []
        p = parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except OSError as exc:
                self._remove_made()
                raise OutputError(f"{d}: cannot create output folder: {exc.strerror}") from None
            self._made.append(d)
        clean_stale(parent, self.target.name)
        self.tmp = parent / _tmp_name(self.target.name)
        self.tmp.mkdir(mode=0o700)
        return self.tmp

    def _remove_made(self) -> None:
        for d in reversed(self._made):
            try:
                d.rmdir()
            except OSError:
                break
        self._made.clear()

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        failed = exc_type is not None
        with uninterrupted() if not failed else nullcontext():  # the claim and its clean-up are not cut
            try:
                if not failed:
                    try:
                        self._claim()
                        mark_written(self.target)
                    except BaseException:
                        failed = True
                        raise
            finally:
                if self.tmp.exists():
                    shutil.rmtree(self.tmp, ignore_errors=True)
                if failed:
                    self._remove_made()

    def _changed(self) -> bool:
        return _state(self.target) != self._start

    def _claim(self) -> None:
        assert self.tmp is not None
        t = self.target
        if self._changed() and not self.force:
            raise OutputError(
                f"{t}: the output folder appeared or changed while hedgebt was running; nothing was replaced "
                f"(pass --force to replace it)"
            )
        if self.force:
            self._check_force_guard()
        os.chmod(self.tmp, 0o755)
        fsync_tree(self.tmp)
        raise_if_terminated()
        if t.is_symlink() or (t.exists() and not t.is_dir()):
            raise OutputError(f"{t}: output path was replaced by a file or link while hedgebt was running; nothing was written")
        if not t.exists():
            try:
                done = _rename2(self.tmp, t, _RENAME_NOREPLACE)
            except FileExistsError:
                done = False
                if not self.force:
                    raise OutputError(f"{t}: the output folder appeared while hedgebt was running; nothing was replaced "
                                      f"(pass --force to replace it)") from None
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise OutputError(f"{t}: cannot create the output folder: {exc.strerror}") from None
                done = False
                if not self.force:
                    raise OutputError(f"{t}: the output folder appeared while hedgebt was running; nothing was replaced "
                                      f"(pass --force to replace it)") from None
            if not done and not t.exists():  # pragma: no cover - no renameat2
                os.rename(self.tmp, t)
                done = True
            if done:
                fsync_dir(t.parent)
                return
        if not _rename2(self.tmp, t, _RENAME_EXCHANGE):  # pragma: no cover - no renameat2
            old = t.with_name(_tmp_name(t.name))
            os.replace(t, old)
            os.replace(self.tmp, t)
            shutil.rmtree(old, ignore_errors=True)
        # self.tmp now holds the replaced folder; __exit__ removes it
        fsync_dir(t.parent)
