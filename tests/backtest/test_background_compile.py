"""The background compile of the bar loop (backtest.background_compile): when it starts, that it
never outlives the command, and that a run's outputs do not depend on it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backtest import background_compile as bc
from backtest import kernels as K

ROOT = Path(__file__).resolve().parents[2]


class _FakeIndex:
    def __init__(self, index: dict) -> None:
        self._index = index

    def _load_index(self) -> dict:
        return self._index


class _FakeCache:
    def __init__(self, path: Path, index: dict) -> None:
        self._cache_path = str(path)
        self._cache_file = _FakeIndex(index)


def test_cache_state_missing_cached_and_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(K._simulate_group_nb, "_cache", _FakeCache(tmp_path, {}))
    assert bc.kernel_cache_state() == "missing"
    monkeypatch.setattr(K._simulate_group_nb, "_cache", _FakeCache(tmp_path, {("sig", "magic"): "file"}))
    assert bc.kernel_cache_state() == "cached"
    # a cache folder that is not there (or not writable): a child could not save anything
    monkeypatch.setattr(K._simulate_group_nb, "_cache", _FakeCache(tmp_path / "absent", {}))
    assert bc.kernel_cache_state() == "unavailable"
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(K._simulate_group_nb, "_cache", _FakeCache(tmp_path, {}))
    assert bc.kernel_cache_state() == "unavailable"
    # caching off (numba's NullCache has no cache path)
    monkeypatch.setattr(K._simulate_group_nb, "_cache", object())
    assert bc.kernel_cache_state() == "unavailable"


@pytest.mark.parametrize("state", ["cached", "unavailable"])
def test_no_child_unless_the_kernel_is_missing_from_a_writable_cache(state: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bc, "kernel_cache_state", lambda: state)
    with bc.BackgroundCompile.start() as bg:
        assert bg.pid is None
        assert bg.wait() is False


def test_disabled_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bc, "kernel_cache_state", lambda: "missing")
    with bc.BackgroundCompile.start(enabled=False) as bg:
        assert bg.pid is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_child_is_ended_and_reaped_when_the_command_leaves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An early exit (an error before the bar loop) ends the child mid-compile: no process is left,
    and no half-written cache file (numba writes each under a temporary name, then renames it)."""
    monkeypatch.setattr(bc, "kernel_cache_state", lambda: "missing")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="bad config"):
        with bc.BackgroundCompile.start() as bg:
            pid = bg.pid
            assert pid is not None and _alive(pid)
            time.sleep(1.0)
            raise RuntimeError("bad config")
    proc = bg._proc
    assert proc.returncode is not None  # reaped: not a zombie, not running
    assert not _alive(pid)
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and ".tmp." in p.name]
    assert leftovers == []


def test_wait_with_a_timeout_ends_the_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bc, "kernel_cache_state", lambda: "missing")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    with bc.BackgroundCompile.start() as bg:
        assert bg.wait(timeout_s=0.5) is False  # not finished in time: ended, the command compiles itself
        assert bg._proc.returncode is not None


def test_sample_market_compiles_the_specialisation_a_run_uses() -> None:
    """The child's sample arguments give the bar loop the argument types of a real run's call
    (read-only market arrays whatever the caller passed: the demo's index is read-only, the
    sample's writeable), so the cache entry the child writes is the one the run loads."""
    import numba

    from backtest.config import load_config
    from backtest.engine import prepare

    prepared = prepare(load_config(ROOT / "backtest" / "scenarios" / "demo.toml"))
    demo_args = prepared.market.kernel_args()
    sample = bc._sample_inputs()
    assert any(not a.flags.writeable for a in demo_args[:16]) and all(a.flags.writeable for a in sample[:16])
    demo_mkt = K._market(*demo_args[:16], quiet_bars=False)[0]
    sample_mkt = K._market(*sample[:16], quiet_bars=False)[0]
    assert numba.typeof(demo_mkt) == numba.typeof(sample_mkt)
    for field in demo_mkt._fields:
        assert not getattr(demo_mkt, field).flags.writeable, field
    fp = np.zeros(K.N_FP)
    fp.flags.writeable = False
    assert numba.typeof(K._variant_arrays(fp.reshape(1, -1), np.zeros((1, K.N_IP), dtype=np.int32))[0]) == \
        numba.typeof(K._variant_arrays(sample[17].reshape(1, -1), sample[18].reshape(1, -1))[0])


def _demo(out: Path, cache: Path, background: str) -> dict[str, str]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "HEDGEBT_BACKGROUND_COMPILE": background,
           "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "backtest.cli", "demo", "--out", str(out), "--force", "--quiet",
                    "--no-report"], env=env, cwd=ROOT, check=True, timeout=900)
    return {f"{sub}/{name}": hashlib.sha256((out / sub / name).read_bytes()).hexdigest()
            for sub in ("quarterly", "perpetual") for name in ("summary.json", "ledger.parquet")}


@pytest.mark.slow
def test_first_run_outputs_are_the_same_with_and_without_the_background_compile(tmp_path: Path) -> None:
    """Both from an empty numba cache: with the child (the run loads the bar loop the child
    compiled) and without (the run compiles it): byte-identical summaries and ledgers."""
    on = _demo(tmp_path / "on", tmp_path / "cache_on", "1")
    off = _demo(tmp_path / "off", tmp_path / "cache_off", "0")
    assert on == off
    assert any(p.name.startswith("kernels._simulate_group_nb") for p in (tmp_path / "cache_on").rglob("*.nbi"))
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp." in p.name]
    assert leftovers == []
    assert np.all([len(v) == 64 for v in on.values()])
