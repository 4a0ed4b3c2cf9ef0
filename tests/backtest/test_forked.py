"""backtest.forked: a piece of a command run in a forked process, and ``hedgebt demo`` using it."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import pytest
from conftest import NOTIONAL_DAILY, write_synthetic_prices

from backtest.errors import DataError
from backtest.forked import ForkedFailure, ForkedRun

pytestmark = pytest.mark.skipif(not ForkedRun.available(), reason="needs os.fork")


def test_the_outcome_comes_back_lines_and_warnings() -> None:
    def work(lines: list) -> None:
        lines.append(("say", f"from {os.getpid()}"))
        lines.append(("stage", "simulating", 1.5))
        warnings.warn("funding series is a proxy", UserWarning, stacklevel=1)

    with ForkedRun.start(work) as child:
        outcome = child.result()
    (kind, text), stage = outcome.lines
    assert kind == "say" and text != f"from {os.getpid()}"  # it ran in another process
    assert stage == ("stage", "simulating", 1.5)
    assert outcome.warnings == ("funding series is a proxy",)


def test_a_user_error_is_raised_again_with_its_message_and_exit_code() -> None:
    def work(lines: list) -> None:
        lines.append(("say", "before the error"))
        raise DataError("prices.parquet", "column 'close' has a negative price at row 7", column="close")

    with ForkedRun.start(work) as child, pytest.raises(Exception) as info:
        child.result()
    assert type(info.value).__name__ == "HedgeBTError" and info.value.exit_code == 2
    assert "prices.parquet" in str(info.value) and "negative price at row 7" in str(info.value)


def test_a_crash_is_a_forked_failure_with_the_traceback() -> None:
    def work(lines: list) -> None:
        {}["missing"]

    with ForkedRun.start(work) as child, pytest.raises(ForkedFailure, match="KeyError: 'missing'"):
        child.result()


def test_leaving_the_block_ends_a_running_child_after_its_clean_up(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    started = tmp_path / "started"

    def work(lines: list) -> None:
        try:
            started.write_text("x")
            time.sleep(60)
        finally:
            marker.write_text("finally ran")

    t0 = time.monotonic()
    with ForkedRun.start(work) as child:
        while not started.exists():
            time.sleep(0.01)
        pid = child._pid
    assert time.monotonic() - t0 < 10
    assert marker.read_text() == "finally ran"
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped


def _demo_configs(tmp_path: Path, second: str) -> dict[str, Path]:
    write_synthetic_prices(tmp_path / "prices.parquet", n_days=30)
    (tmp_path / "demo.toml").write_text(NOTIONAL_DAILY, encoding="utf-8")
    (tmp_path / "demo_perpetual.toml").write_text(second, encoding="utf-8")
    return {"demo.toml": tmp_path / "demo.toml", "demo_perpetual.toml": tmp_path / "demo_perpetual.toml"}


def test_demo_runs_the_second_scenario_forked_with_the_same_outputs(tmp_path: Path, monkeypatch, capsys) -> None:
    """The demo with the second scenario forked writes what a plain ``hedgebt run`` of each
    scenario writes (same bytes), and prints the second scenario's lines after the first's."""
    from backtest import api
    from backtest.cli import main

    configs = _demo_configs(tmp_path, NOTIONAL_DAILY.replace('name = "synthetic"', 'name = "second"'))
    monkeypatch.setattr(api, "bundled_scenario", lambda name: configs[name])
    assert main(["demo", "--out", str(tmp_path / "out"), "--no-report"]) == 0
    printed = capsys.readouterr().out
    assert printed.index("synthetic: 2024") < printed.index("second: 2024") < printed.index("wrote")
    for name, sub in (("demo.toml", "quarterly"), ("demo_perpetual.toml", "perpetual")):
        assert main(["run", str(configs[name]), "--out", str(tmp_path / sub), "--no-report"]) == 0
        for file in ("summary.json", "ledger.parquet"):
            assert (tmp_path / "out" / sub / file).read_bytes() == (tmp_path / sub / file).read_bytes(), (sub, file)
    assert json.loads((tmp_path / "out" / "perpetual" / "summary.json").read_text())["scenario"]["name"] == "second"


def test_demo_with_a_bad_second_scenario_exits_2_and_writes_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    from backtest import api
    from backtest.cli import main

    bad = NOTIONAL_DAILY.replace('coins = ["COIN"]', 'coins = ["NOPE"]')
    configs = _demo_configs(tmp_path, bad)
    monkeypatch.setattr(api, "bundled_scenario", lambda name: configs[name])
    assert main(["demo", "--out", str(tmp_path / "out"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hedgebt: error: ") and "NOPE" in err[0], err
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temporary folder left


def test_objects_of_the_command_stay_out_of_the_forked_collector() -> None:
    """Objects alive at the fork are frozen in the child (its collector never walks, and so
    never copies, them) and unfrozen again in the command."""
    import gc

    from backtest.forked import gc_frozen

    assert gc.get_freeze_count() == 0
    with gc_frozen():
        assert gc.get_freeze_count() > 0
        with gc_frozen():  # nested: still frozen after the inner block
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0

    def work(lines: list) -> None:
        lines.append(("frozen", gc.get_freeze_count()))

    with ForkedRun.start(work) as child:
        (_, frozen), = child.result().lines
    assert frozen > 1000 and gc.get_freeze_count() == 0


class _CompilingChild:
    """Stands in for a background compile still running: the demo forks its second scenario
    once the first is replayed, and meanwhile (while the first waits) prepares the second."""

    pid = 12345

    def wait(self, timeout_s: float = 300.0, meanwhile=None) -> bool:
        if meanwhile is not None:
            meanwhile()
        return True

    def stop(self) -> None:
        pass

    def __enter__(self) -> _CompilingChild:
        return self

    def __exit__(self, *exc) -> None:
        pass


def _record_prepares(monkeypatch, log: Path) -> None:
    import backtest.engine

    real = backtest.engine.prepare

    def prepare(config, **kw):
        with log.open("a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {config.scenario.name}\n")
        return real(config, **kw)

    monkeypatch.setattr(backtest.engine, "prepare", prepare)


def test_demo_prepares_the_second_scenario_while_the_first_waits_for_the_compile(tmp_path: Path, monkeypatch) -> None:
    """On a first run (the bar loop compiling in the background), the second scenario is
    prepared in the command's process while the first waits for the compile, and the forked
    run takes that preparation over (it prepares nothing itself); outputs as a plain run's."""
    from backtest import api, cli
    from backtest.cli import main

    configs = _demo_configs(tmp_path, NOTIONAL_DAILY.replace('name = "synthetic"', 'name = "second"'))
    monkeypatch.setattr(api, "bundled_scenario", lambda name: configs[name])
    monkeypatch.setattr(cli.BackgroundCompile, "start", classmethod(lambda cls, enabled=True: _CompilingChild()))
    log = tmp_path / "prepares.log"
    _record_prepares(monkeypatch, log)
    assert main(["demo", "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 0
    calls = [line.split() for line in log.read_text(encoding="utf-8").splitlines()]
    assert calls == [[str(os.getpid()), "synthetic"], [str(os.getpid()), "second"]]
    monkeypatch.undo()
    assert main(["run", str(configs["demo_perpetual.toml"]), "--out", str(tmp_path / "plain"), "--no-report",
                 "--quiet"]) == 0
    for file in ("summary.json", "ledger.parquet"):
        assert (tmp_path / "out" / "perpetual" / file).read_bytes() == (tmp_path / "plain" / file).read_bytes()


def test_a_bad_second_scenario_prepared_ahead_is_still_its_own_error(tmp_path: Path, monkeypatch, capsys) -> None:
    """The preparation ahead fails quietly; the forked run prepares again and its error is the
    demo's one line and exit code 2, with nothing written."""
    from backtest import api, cli
    from backtest.cli import main

    configs = _demo_configs(tmp_path, NOTIONAL_DAILY.replace('coins = ["COIN"]', 'coins = ["NOPE"]'))
    monkeypatch.setattr(api, "bundled_scenario", lambda name: configs[name])
    monkeypatch.setattr(cli.BackgroundCompile, "start", classmethod(lambda cls, enabled=True: _CompilingChild()))
    assert main(["demo", "--out", str(tmp_path / "out"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hedgebt: error: ") and "NOPE" in err[0], err
    assert not (tmp_path / "out").exists()


def test_warnings_of_the_second_scenario_prepared_ahead_come_after_the_firsts(tmp_path: Path, monkeypatch,
                                                                               capsys) -> None:
    """The preparation ahead holds its warnings back: the forked run gives them as its own, so
    the demo prints the first scenario's warnings, then the second's, as without a compile."""
    import backtest.engine
    import backtest.results
    from backtest import api, cli
    from backtest.cli import main

    configs = _demo_configs(tmp_path, NOTIONAL_DAILY.replace('name = "synthetic"', 'name = "second"'))
    monkeypatch.setattr(api, "bundled_scenario", lambda name: configs[name])
    monkeypatch.setattr(cli.BackgroundCompile, "start", classmethod(lambda cls, enabled=True: _CompilingChild()))
    real_prepare, real_run = backtest.engine.prepare, backtest.results.run

    def prepare(config, **kw):
        warnings.warn(f"prepared {config.scenario.name}", UserWarning, stacklevel=1)
        return real_prepare(config, **kw)

    def run(config, **kw):
        warnings.warn(f"replayed {config.scenario.name}", UserWarning, stacklevel=1)
        return real_run(config, **kw)

    monkeypatch.setattr(backtest.engine, "prepare", prepare)
    monkeypatch.setattr(backtest.results, "run", run)
    assert main(["demo", "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 0
    said = [line.removeprefix("hedgebt: warning: ") for line in capsys.readouterr().err.splitlines()]
    assert said == ["prepared synthetic", "replayed synthetic", "prepared second", "replayed second"]


@pytest.mark.parametrize("report", [True, False])
def test_warm_demo_imports_the_report_libraries_once_before_forking(tmp_path: Path, monkeypatch, report: bool) -> None:
    """With the bar loop cached, the report's libraries are imported in the command's process
    before the second scenario is forked (the fork inherits them instead of importing them
    again for its own report); without a report they are not imported for it at all."""
    from backtest import api, cli, forked
    from backtest.cli import main

    configs = _demo_configs(tmp_path, NOTIONAL_DAILY.replace('name = "synthetic"', 'name = "second"'))
    monkeypatch.setattr(api, "bundled_scenario", lambda name: configs[name])
    log: list[str] = []
    monkeypatch.setattr(cli, "_load_report_libraries", lambda: log.append(f"load {os.getpid()}"))
    real_start = forked.ForkedRun.start.__func__
    monkeypatch.setattr(forked.ForkedRun, "start", classmethod(lambda cls, fn: log.append("fork") or real_start(cls, fn)))
    real_save = api.Result.save
    monkeypatch.setattr(api.Result, "save", lambda self, claim, report=True, progress=None: real_save(
        self, claim, report=False, progress=progress))  # the order is the point here, not the report
    args = ["demo", "--out", str(tmp_path / "out"), "--quiet"] + ([] if report else ["--no-report"])
    assert main(args) == 0
    assert log == ([f"load {os.getpid()}", "fork"] if report else ["fork"])


def test_first_run_forks_once_the_compile_is_over_before_either_replay(tmp_path: Path, monkeypatch) -> None:
    """On a first run the second scenario is forked as soon as the background compile is over,
    after this process has loaded the compiled loop (so the fork inherits it) and before the
    first scenario is replayed: both replays run at once."""
    import backtest.results
    from backtest import api, cli, forked
    from backtest.cli import main

    configs = _demo_configs(tmp_path, NOTIONAL_DAILY.replace('name = "synthetic"', 'name = "second"'))
    monkeypatch.setattr(api, "bundled_scenario", lambda name: configs[name])
    monkeypatch.setattr(cli.BackgroundCompile, "start", classmethod(lambda cls, enabled=True: _CompilingChild()))
    log = tmp_path / "events.log"

    def note(event: str) -> None:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"{'parent' if os.getpid() == parent else 'fork'} {event}\n")

    parent = os.getpid()
    real_load, real_run = cli.compile_bar_loop, backtest.results.run
    monkeypatch.setattr(cli, "compile_bar_loop", lambda: note("loop loaded") or real_load())
    real_start = forked.ForkedRun.start.__func__
    monkeypatch.setattr(forked.ForkedRun, "start", classmethod(lambda cls, fn: note("fork") or real_start(cls, fn)))
    monkeypatch.setattr(backtest.results, "run", lambda config, **kw: note(f"replay {config.scenario.name}")
                        or real_run(config, **kw))
    assert main(["demo", "--out", str(tmp_path / "out"), "--no-report", "--quiet"]) == 0
    events = log.read_text(encoding="utf-8").splitlines()
    assert events[:2] == ["parent loop loaded", "parent fork"], events
    assert sorted(events[2:]) == ["fork replay second", "parent replay synthetic"], events
