"""Progress inside a run: callbacks from the long loops, bars on a terminal only, nothing with --quiet."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from backtest import api
from backtest.cli import main
from backtest.engine import min_safe_collaterals, prepare, variant_for
from backtest.margin_stress import StressSpec, run_stress

from conftest import synthetic_config, write_notional_scenario, write_synthetic_prices

MARGIN = {"collateral_usd": 2_000.0, "reserve_usd": 1_000_000.0, "initial_rate": 0.05, "maintenance_rate": 0.02}


class Recorder:
    """A :class:`backtest.progress.Progress` that keeps every call, per step."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[int, int]]] = defaultdict(list)

    def __call__(self, step: str, done: int, total: int) -> None:
        self.calls[step].append((done, total))

    def check(self, step: str) -> tuple[int, int]:
        """Counts never go down, never exceed the total, and end at the total; the last call."""
        calls = self.calls[step]
        assert calls, f"no progress reported for {step!r}"
        done = [d for d, _ in calls]
        assert done == sorted(done), f"{step}: counts go down: {done}"
        assert all(0 <= d <= t for d, t in calls), f"{step}: {calls}"
        assert calls[-1][0] == calls[-1][1], f"{step}: ends at {calls[-1]}"
        return calls[-1]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    return write_notional_scenario(tmp_path)


def test_bisection_reports_every_kernel_pass_and_gives_the_same_answer(tmp_path: Path, monkeypatch) -> None:
    import backtest.engine as E

    config = synthetic_config(write_synthetic_prices(tmp_path / "prices.parquet", n_days=60), margin=MARGIN)
    p = prepare(config)
    variants = [variant_for(config, c) for c in range(len(p.rules))]
    plain = min_safe_collaterals(p.market, variants)
    kernel_calls = []
    real = E.run_variants
    monkeypatch.setattr(E, "run_variants", lambda *a, **k: kernel_calls.append(1) or real(*a, **k))
    rec = Recorder()
    np.testing.assert_array_equal(min_safe_collaterals(p.market, variants, progress=rec), plain)
    passes, _ = rec.check("collateral bisection")
    assert passes == len(kernel_calls) > 3  # one count per kernel pass: free replay, 0, growth, halvings


def test_run_and_report_progress_counts(scenario: Path, tmp_path: Path) -> None:
    rec = Recorder()
    res = api.run(scenario, progress=rec)
    rec.check("collateral bisection")
    assert rec.check("rules") == (len(res.rules), len(res.rules))
    files = res.report(tmp_path / "out", progress=rec)
    assert rec.check("HE bootstrap") == (len(res.rules), len(res.rules))
    assert rec.check("figures") == (len(files.figures), len(files.figures))
    assert rec.check("PDF pages") == (files.pages, files.pages)


def test_stress_progress_counts_paths(tmp_path: Path) -> None:
    config = synthetic_config(write_synthetic_prices(tmp_path / "prices.parquet", n_days=60), margin=MARGIN)
    rec = Recorder()
    res = run_stress(config, StressSpec(paths=7, horizon_days=3, seed=2, collateral_usd=(0.0, 5_000.0)), progress=rec)
    assert rec.check("bootstrap paths") == (7, 7)
    rec.check("collateral bisection")
    assert res.table.shape[0] == 2 * len(res.info["rules"])


def test_bars_on_a_terminal_only_and_never_with_quiet(scenario: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    term = FakeTerminal()
    monkeypatch.setattr("sys.stderr", term)
    assert main(["run", str(scenario), "--out", str(tmp_path / "tty")]) == 0
    err = term.getvalue()
    assert "figures: " in err and "PDF pages: " in err and "collateral bisection: " in err
    # the stage line is closed before the bars and its time printed on a line of its own
    assert "hedgebt: simulating scenario.toml ...\n" in err and "hedgebt: writing results and the report: " in err
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"  wrote {tmp_path / 'tty'}/: ")

    quiet = FakeTerminal()
    monkeypatch.setattr("sys.stderr", quiet)
    assert main(["run", str(scenario), "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert quiet.getvalue() == "" and capsys.readouterr().out == ""

    monkeypatch.undo()
    assert main(["run", str(scenario), "--out", str(tmp_path / "pipe")]) == 0
    piped = capsys.readouterr()
    assert piped.err == ""
    lines = piped.out.splitlines()
    assert all(ln.startswith(("hedgebt: ", "synthetic: ", "  ")) for ln in lines), lines
    assert not any("figures:" in ln or "PDF pages" in ln or "bisection" in ln for ln in lines)
    assert [ln for ln in lines if ln.startswith("hedgebt: ")][:2] == [
        "hedgebt: simulating scenario.toml ...", lines[1]] and lines[1].startswith("hedgebt: simulating scenario.toml: ")
