"""Compile the bar loop into numba's cache in a second process while a run loads its data.

On the first run after an install numba's cache is empty and the bar loop
(:func:`backtest.kernels._simulate_group_nb` and what it calls) takes most of the
start-up to compile. :class:`BackgroundCompile` starts two child interpreters that
compile exactly that kernel for the argument types of every real run (the kernels take
read-only, contiguous float64/int64/bool arrays whatever the caller passes;
:func:`kernel_signature`) and save it to the same cache, while the command loads the
data, builds the index and estimates the hedge ratios (which compile their own, smaller
kernels). The loop's compiled callees are separate functions in its machine code, each
with its own cache entry, so the work splits: one child compiles the one-variant step
``_bar`` (the largest), the other the quiet-bar passes and the return statistics, then
waits for the first (it reads a pipe whose only writer is that child, so it wakes when
the child ends, however it ends) and compiles the loop itself, which loads its callees
from the cache (:func:`callee_signatures` are the types the loop calls them with). Where
a child cannot be handed a pipe (not POSIX), one child compiles everything.
Before its first bar-loop call the command waits for the loop's child
(:meth:`BackgroundCompile.wait`, which meanwhile compiles the per-market kernels the run
calls first); numba then loads the bar loop's machine code from the cache instead of
compiling it.

Safety:

* nothing starts when the cache already holds the kernel compiled from the current
  source, when the cache folder is not writable, or when numba's cache is off (the
  command compiles in process, as without this module);
* the children's output goes nowhere; a child that fails or takes longer than
  ``timeout_s`` changes nothing but the time (the command, or the loop's child,
  compiles what is missing);
* the children are ended (SIGTERM, then SIGKILL) when the command leaves the ``with`` block,
  normally or by an error or SIGTERM, so no process outlives the command; numba writes
  each cache file under a temporary name and renames it, so an ended child leaves no
  half-written entry;
* results never depend on it: the cache holds the machine code of the same source for
  the same argument types, which the command would otherwise compile itself (tested:
  byte-identical outputs with and without).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["BackgroundCompile", "kernel_cache_state"]

#: how long :meth:`BackgroundCompile.wait` waits for the child by default (seconds)
TIMEOUT_S = 300.0


def kernel_cache_state() -> str:
    """``"cached"`` (the bar loop of the current source is in numba's cache), ``"missing"``
    (not yet, and the cache folder is writable) or ``"unavailable"`` (caching off or the
    folder not writable: a background compile could not help)."""
    try:
        from backtest import kernels

        cache = kernels._simulate_group_nb._cache
        path = cache._cache_path  # numba's FunctionCache; absent on a NullCache (caching off)
        index = cache._cache_file._load_index()  # {} when missing or compiled from other source
    except Exception:  # noqa: BLE001 - any numba-internal difference: behave as without this module
        return "unavailable"
    if index:
        return "cached"
    return "missing" if os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK) else "unavailable"


class BackgroundCompile:
    """A child process compiling the bar loop into numba's cache (see the module docstring).

    Use as a context manager: ``with BackgroundCompile.start() as bg: ...; bg.wait()``.
    ``start()`` returns an instance whose :meth:`wait` and exit do nothing when no child
    was needed.
    """

    def __init__(self, proc: subprocess.Popen | None, helper: subprocess.Popen | None = None) -> None:
        self._proc = proc  # compiles the loop (after its callees), the one :meth:`wait` waits for
        self._helper = helper  # compiles ``_bar``

    @classmethod
    def start(cls, enabled: bool = True) -> BackgroundCompile:
        """Start the children if ``enabled`` and the kernel is missing from a writable cache."""
        if not enabled or kernel_cache_state() != "missing":
            return cls(None)
        root = str(Path(__file__).resolve().parents[1])  # the children import this very source tree
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        command = [sys.executable, "-m", "backtest.background_compile"]
        quiet = dict(env=env, cwd=root, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _pipes_inherit():  # one child compiles the callees and the loop
            try:
                return cls(subprocess.Popen(command + ["loop"], stdout=subprocess.DEVNULL, **quiet))
            except OSError:
                return cls(None)
        try:
            helper = subprocess.Popen(command + ["bar"], stdout=subprocess.PIPE, **quiet)
        except OSError:
            return cls(None)
        try:  # the loop's child reads the helper's stdout until the helper ends
            fd = helper.stdout.fileno()
            proc = subprocess.Popen(command + ["loop", str(fd)], pass_fds=(fd,), stdout=subprocess.DEVNULL, **quiet)
        except OSError:
            proc = None
        finally:
            helper.stdout.close()  # only the helper writes to it; only the loop's child reads it
        if proc is None:
            _end(helper)
            return cls(None)
        return cls(proc, helper)

    @property
    def pid(self) -> int | None:
        """The child's process id (None when none was started)."""
        return None if self._proc is None else self._proc.pid

    def wait(self, timeout_s: float = TIMEOUT_S, meanwhile: Callable[[], object] | None = None) -> bool:
        """Wait until the child has finished (at most ``timeout_s``; then it is ended).

        While it runs, this process compiles the per-market kernels the run calls next, then
        calls ``meanwhile`` (work the command needs later, e.g. loading the report's
        libraries) if the child is still running; with two children, only once the one
        compiling ``_bar`` has ended (the longest compile: it gets a core of its own until
        then, and this work runs beside the loop's compile instead). Returns True when a
        child ran and finished successfully (the kernel is cached)."""
        if self._proc is None:
            return False
        deadline = time.monotonic() + timeout_s
        if self._helper is not None and self._proc.poll() is None:
            # the step's compile is the longest part: both cores are left to the children
            # until it ends; this process then works beside the loop's compile
            try:
                self._helper.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass  # the loop's child is waited for (and ended) below
        if self._proc.poll() is None:
            _compile_market_helpers()  # meanwhile, on this core, what the run calls next
            if meanwhile is not None and self._proc.poll() is None:
                meanwhile()
        try:
            return self._proc.wait(timeout=max(deadline - time.monotonic(), 0.0)) == 0
        except subprocess.TimeoutExpired:
            self.stop()
            return False

    def stop(self) -> None:
        """End the children that are still running, and reap them."""
        for proc in (self._proc, self._helper):
            _end(proc)

    def __enter__(self) -> BackgroundCompile:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _pipes_inherit() -> bool:
    """Whether a child can be handed another child's output pipe (``pass_fds``: POSIX only)."""
    return os.name == "posix"


def _end(proc: subprocess.Popen | None) -> None:
    """End ``proc`` (SIGTERM, then SIGKILL after 5 s) if it is still running, and reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def _compile_market_helpers() -> None:
    """Compile (or load) the per-market kernels a run calls before the bar loop
    (``_market_prep``, ``_unhedged_stats``, ``_slots``) by preparing the sample market."""
    from backtest import kernels

    kernels._market(*_sample_inputs()[:16], quiet_bars=True)


def _sample_inputs() -> tuple:
    """Arguments of :func:`backtest.kernels.simulate_1d_nb` for a four-bar market (one
    contract, margin on, a rebalance every bar): valid, so the compiled kernel also runs."""
    import numpy as np

    from backtest import kernels as K

    T = 4
    px = np.full((T, 1), 100.0)
    idx = np.full(T, 100.0)
    nan = np.full(T, np.nan)
    c0 = np.zeros(T, dtype=np.int64)
    c1 = np.full(T, -1, dtype=np.int64)
    fp = np.zeros(K.N_FP)
    fp[K.FP_IM], fp[K.FP_MM], fp[K.FP_COLLATERAL] = 0.1, 0.05, 1000.0
    ip = np.zeros(K.N_IP, dtype=np.int64)
    ip[K.IP_EVERY], ip[K.IP_MARGIN_ON] = 1, 1
    return (px, idx, nan, nan, c0, c1, np.zeros(T), np.array([10**12], dtype=np.int64), np.zeros(T),
            np.full(T, 1e6), np.ones(T, dtype=np.bool_), np.full(T, 1000.0), np.zeros(T), np.zeros(T),
            np.zeros(T, dtype=np.bool_), np.full((T, 1), 0.5), 1.0, fp, ip, True, np.empty((K.N_OUT, T)),
            np.empty(K.N_SUM))


def _sample_kernel_args() -> tuple:
    """The arguments :func:`backtest.kernels.simulate_1d_nb` passes to the bar loop for the
    sample market, built without running any compiled function: the outputs of
    ``_market_prep`` and ``_slots`` are stood in by arrays of their types (the values do not
    matter, only the types the kernel is compiled for; tested against a real run's)."""
    import numpy as np

    from backtest import kernels as K

    (px, idx, _, _, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar, alt_value, alt_pnl, alt_flow, alt_changed,
     hr, cs, fp, ip, record, out, _) = _sample_inputs()
    flags = np.zeros(len(idx), dtype=np.bool_)
    m = K.Mkt(px, idx, idx, idx, flags, flags, c0, c1, w1, exp_bar, fund_rate, volume_usd, vm_bar, alt_value,
              alt_pnl, alt_flow, alt_changed, hr, c0, c1)
    m = K.Mkt(*(K._frozen(np.ascontiguousarray(a)) for a in m))
    fps, ips = K._variant_arrays(fp.reshape(1, K.N_FP), ip.reshape(1, K.N_IP))
    return (m, float(cs), fps, ips, np.zeros(1, dtype=np.int64), 1, np.zeros(K.N_SUM), np.empty((1, K.N_SUM)),
            bool(record), out, K._new_work(px.shape[1]))


def kernel_signature() -> tuple:
    """The argument types of the bar loop in every run (see :func:`_sample_kernel_args`)."""
    import numba

    return tuple(numba.typeof(a) for a in _sample_kernel_args())


def callee_signatures() -> dict[str, list[tuple]]:
    """The argument types with which the bar loop (for :func:`kernel_signature`) calls its
    compiled callees, by function name (tested against the loop's own compile): the
    one-variant step with the group stride as a literal, the quiet-bar passes on the group's
    scratch arrays, and the return statistics (numba types the tile's first row count as a
    literal ``0`` once, hence two)."""
    import numpy as np
    from numba import typeof, types

    from backtest import kernels as K

    sig = kernel_signature()
    f1, f2 = typeof(np.empty(1)), typeof(np.empty((1, 1)))
    i1, b1 = typeof(np.empty(1, dtype=np.int64)), typeof(np.empty(1, dtype=np.bool_))
    ro1, ro2 = typeof(K._frozen(np.empty(1))), typeof(K._frozen(np.empty((1, 1))))
    params = typeof(K.Params(*([0.0] * 13), False, False, False))
    i, f, b, stride = types.int64, types.float64, types.boolean, types.literal(K._GROUP)
    return {
        "_bar": [(i, i, stride, sig[0], f, params, f1, i1, i, f1, f, b, f2)],
        "_quiet_pass": [(i, i, i, f1, ro2, i1, f2, b1) + (f,) * 8 + (b, f, f, f)],
        "_quiet_rebalance": [(i, i, i, f1, f2, b1) + (f,) * 8 + (b, f, f, f, f)],
        "_return_stats": [(f2, n_rows, i, ro1, f1, stride, i) for n_rows in (types.literal(0), i)],
    }


def _compile(names: tuple[str, ...]) -> None:
    """Compile (numba caches) the bar loop's callees ``names`` for :func:`callee_signatures`."""
    from backtest import kernels

    sigs = callee_signatures()
    for name in names:
        for sig in sigs[name]:
            getattr(kernels, name).compile(sig)


def _child(part: str, helper_fd: int | None = None) -> int:
    """A child's work (numba saves what it compiles to the cache).

    ``"bar"``: the one-variant step. ``"loop"``: the quiet-bar passes and the return
    statistics, then, once the ``"bar"`` child has ended (EOF on ``helper_fd``), the bar loop
    for :func:`kernel_signature`, which loads those callees from the cache (and compiles
    any that are missing).
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run finally blocks
    if part == "bar":
        _compile(("_bar",))
        return 0
    _compile(("_quiet_pass", "_quiet_rebalance", "_return_stats"))
    if helper_fd is not None:
        with os.fdopen(helper_fd, "rb") as pipe:
            pipe.read()  # returns at EOF: the helper has ended
    compile_bar_loop()
    return 0


def compile_bar_loop() -> None:
    """The bar loop for :func:`kernel_signature` in this process: loaded from numba's cache once a
    child has compiled it (~0.4 s), compiled here otherwise."""
    from backtest import kernels

    kernels._simulate_group_nb.compile(kernel_signature())


if __name__ == "__main__":
    _args = sys.argv[1:]
    raise SystemExit(_child(_args[0] if _args else "loop", int(_args[1]) if len(_args) > 1 else None))
