"""Compile the bar loop into numba's cache in a second process while a run loads its data.

On the first run after an install numba's cache is empty and the bar loop
(:func:`backtest.kernels._simulate_group_nb` and what it calls) takes most of the
start-up to compile. :class:`BackgroundCompile` starts a child interpreter that
compiles exactly that kernel for the argument types of every real run (the kernels take
read-only, contiguous float64/int64/bool arrays whatever the caller passes;
:func:`kernel_signature`) and saves it to the same cache, while the command loads the
data, builds the index and estimates the hedge ratios (which compile their own, smaller
kernels) on the other core. Before its first bar-loop call the command waits for the
child (:meth:`BackgroundCompile.wait`, which meanwhile compiles the per-market kernels
the run calls first); numba then loads the bar loop's machine code from the cache
instead of compiling it.

Safety:

* nothing starts when the cache already holds the kernel compiled from the current
  source, when the cache folder is not writable, or when numba's cache is off (the
  command compiles in process, as without this module);
* the child's output goes nowhere; a child that fails or takes longer than
  ``timeout_s`` changes nothing but the time (the command compiles what is missing);
* the child is ended (SIGTERM, then SIGKILL) when the command leaves the ``with`` block,
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

    def __init__(self, proc: subprocess.Popen | None) -> None:
        self._proc = proc

    @classmethod
    def start(cls, enabled: bool = True) -> BackgroundCompile:
        """Start the child if ``enabled`` and the kernel is missing from a writable cache."""
        if not enabled or kernel_cache_state() != "missing":
            return cls(None)
        root = str(Path(__file__).resolve().parents[1])  # the child imports this very source tree
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "backtest.background_compile"], env=env, cwd=root,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        except OSError:
            return cls(None)
        return cls(proc)

    @property
    def pid(self) -> int | None:
        """The child's process id (None when none was started)."""
        return None if self._proc is None else self._proc.pid

    def wait(self, timeout_s: float = TIMEOUT_S) -> bool:
        """Wait until the child has finished (at most ``timeout_s``; then it is ended).

        Returns True when a child ran and finished successfully (the kernel is cached)."""
        if self._proc is None:
            return False
        if self._proc.poll() is None:
            _compile_market_helpers()  # meanwhile, on this core, what the run calls next
        try:
            return self._proc.wait(timeout=timeout_s) == 0
        except subprocess.TimeoutExpired:
            self.stop()
            return False

    def stop(self) -> None:
        """End the child if it is still running, and reap it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> BackgroundCompile:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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


def _child() -> int:
    """The child's work: compile the bar loop for :func:`kernel_signature` (numba saves it to the cache)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # run finally blocks
    from backtest import kernels

    kernels._simulate_group_nb.compile(kernel_signature())
    return 0


if __name__ == "__main__":
    raise SystemExit(_child())
