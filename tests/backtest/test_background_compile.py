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


def test_the_child_compiles_the_specialisation_a_run_uses() -> None:
    """The child compiles the bar loop for :func:`kernel_signature`; a real run's calls (one
    variant with its ledger, and many variants: the collateral bisection) use exactly that
    specialisation (read-only market arrays whatever the caller passed: the demo's index is
    read-only, the sample's arrays writeable), so the cache entry the child writes is the
    one the run loads."""
    from backtest.config import load_config
    from backtest.engine import prepare, variant_for
    from backtest.market import run_variant, run_variants

    config = load_config(ROOT / "backtest" / "scenarios" / "demo.toml")
    prepared = prepare(config)
    assert any(not a.flags.writeable for a in prepared.market.kernel_args()[:16])
    assert all(a.flags.writeable for a in bc._sample_inputs()[:16])
    before = {tuple(sig) for sig in K._simulate_group_nb.signatures}
    run_variant(prepared.market, variant_for(config, 0))
    run_variants(prepared.market, [variant_for(config, col) for col in range(2)])
    after = {tuple(sig) for sig in K._simulate_group_nb.signatures}
    assert after - before <= {bc.kernel_signature()}
    assert bc.kernel_signature() in after


def test_the_sample_arguments_run() -> None:
    """The sample market is valid: the kernel runs on it (the child only compiles)."""
    sample = bc._sample_inputs()
    K.simulate_1d_nb(*sample)
    assert np.isfinite(sample[-1][K.SUM.index("final_equity_hedged")])


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


class _FakeChild:
    """Stands in for a running child: records when the command waits for it and ends it."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def wait(self, timeout_s: float = bc.TIMEOUT_S, meanwhile=None) -> bool:
        self.events.append("wait")
        if meanwhile is not None:
            meanwhile()
            self.events.append("meanwhile")
        return True

    def __enter__(self) -> _FakeChild:
        return self

    def __exit__(self, *exc) -> None:
        self.events.append("stop")


def test_run_prepares_then_waits_for_the_child_then_simulates_then_ends_it(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import write_notional_scenario

    import backtest.engine
    import backtest.results
    from backtest import cli

    events: list[str] = []
    real_prepare, real_run = backtest.engine.prepare, backtest.results.run
    monkeypatch.setattr(cli.BackgroundCompile, "start", classmethod(lambda cls, enabled=True: _FakeChild(events)))
    monkeypatch.setattr(backtest.engine, "prepare", lambda cfg, **kw: events.append("prepare") or real_prepare(cfg, **kw))
    monkeypatch.setattr(backtest.results, "run", lambda cfg, **kw: events.append("simulate") or real_run(cfg, **kw))
    scenario = write_notional_scenario(tmp_path)
    assert cli.main(["run", str(scenario), "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 0
    assert events == ["prepare", "wait", "simulate", "stop"]
    # with a report, the report's libraries are loaded while the child compiles
    events.clear()
    assert cli.main(["run", str(scenario), "--out", str(tmp_path / "out2"), "--quiet"]) == 0
    assert events == ["prepare", "wait", "meanwhile", "simulate", "stop"]


def test_a_run_refused_before_simulating_starts_no_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from backtest import cli

    started: list[bool] = []
    monkeypatch.setattr(cli.BackgroundCompile, "start", classmethod(lambda cls, enabled=True: started.append(1)))
    assert cli.main(["run", str(tmp_path / "no_such.toml"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert started == []


def _compile_in_fresh_process(cache: Path, code: str) -> str:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=600,
                          capture_output=True, text=True)
    return done.stdout


@pytest.mark.slow
def test_the_loop_loads_the_callees_the_children_compiled(tmp_path: Path) -> None:
    """The callees compiled for :func:`callee_signatures` (the two children's first part) are
    the specialisations the bar loop calls: compiling the loop afterwards, in a fresh
    process on the same cache, loads every one of them from the cache and compiles none."""
    cache = tmp_path / "cache"
    _compile_in_fresh_process(cache, "from backtest import background_compile as bc; "
                                     "bc._compile(('_bar', '_quiet_pass', '_quiet_rebalance', '_return_stats'))")
    out = _compile_in_fresh_process(cache, "\n".join([
        "from backtest import background_compile as bc, kernels as K",
        "K._simulate_group_nb.compile(bc.kernel_signature())",
        "for name, sigs in bc.callee_signatures().items():",
        "    f = getattr(K, name)",
        "    print(name, len(sigs), sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values()))",
    ]))
    rows = [line.split() for line in out.splitlines()]
    assert [r[0] for r in rows] == ["_bar", "_quiet_pass", "_quiet_rebalance", "_return_stats"]
    for name, n_sigs, hits, misses in rows:
        assert (int(hits), int(misses)) == (int(n_sigs), 0), name


def test_both_children_are_ended_and_reaped_when_the_command_leaves(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two children; leaving the block ends and reaps both (mid-compile here)."""
    monkeypatch.setattr(bc, "kernel_cache_state", lambda: "missing")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    with bc.BackgroundCompile.start() as bg:
        pids = [bg._proc.pid, bg._helper.pid]
        assert all(_alive(p) for p in pids)
        time.sleep(1.0)
    assert bg._proc.returncode is not None and bg._helper.returncode is not None
    assert not any(_alive(p) for p in pids)


def test_without_posix_one_child_compiles_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a child cannot inherit the pipe (not POSIX), one child compiles the callees and the loop."""
    monkeypatch.setattr(bc, "kernel_cache_state", lambda: "missing")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(bc, "_pipes_inherit", lambda: False)
    with bc.BackgroundCompile.start() as bg:
        assert bg._helper is None and bg._proc.args[-1] == "loop"
        pid = bg.pid
    assert not _alive(pid)


class _FakeProc:
    """Stands in for a child process: ``running`` until waited for; records the wait."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events, self.done = name, events, False

    def poll(self) -> int | None:
        return 0 if self.done else None

    def wait(self, timeout: float | None = None) -> int:
        self.events.append(f"{self.name} ended")
        self.timeout = timeout
        self.done = True
        return 0


def test_wait_leaves_both_cores_to_the_children_until_the_step_is_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two children, the command's own work during the wait (the per-market kernels, then
    ``meanwhile``) starts once the child compiling ``_bar`` (the longest part) has ended, beside
    the other child's compile of the loop; with one child it starts at once."""
    events: list[str] = []
    monkeypatch.setattr(bc, "_compile_market_helpers", lambda: events.append("market kernels"))
    loop, bar = _FakeProc("loop child", events), _FakeProc("bar child", events)
    assert bc.BackgroundCompile(loop, bar).wait(timeout_s=60.0, meanwhile=lambda: events.append("meanwhile"))
    assert events == ["bar child ended", "market kernels", "meanwhile", "loop child ended"]
    assert bar.timeout == 60.0 and 0.0 < loop.timeout <= 60.0  # one time limit for the whole wait
    events.clear()
    assert bc.BackgroundCompile(_FakeProc("loop child", events)).wait(meanwhile=lambda: events.append("meanwhile"))
    assert events == ["market kernels", "meanwhile", "loop child ended"]
