"""The command line: outputs on success; one line, exit code 2 and nothing written on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest.cli import main

from conftest import write_synthetic_prices

CONFIG = """
[scenario]
name = "cli test"
start = "2024-01-01"
[data]
prices = "prices.parquet"
ohlc = ""
[position]
coins = ["COIN"]
units = [100000]
[index]
constituents = ["AAA", "BBB", "CCC", "DDD"]
min_history_days = 3
max_weight = 0.4
[rebalance]
every_bars = 24
[[rules]]
family = "notional"
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    write_synthetic_prices(tmp_path / "prices.parquet", n_days=40)
    path = tmp_path / "scenario.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hedgebt: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_run_writes_summary_and_ledger(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--no-report"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rules"]["notional"]["trades"] > 0
    assert len(pd.read_parquet(out / "ledger.parquet")) == summary["period"]["bars"]
    assert not list(tmp_path.glob(".out.tmp-*"))  # the temporary folder was renamed away


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("[rebalance]", "[rebalance]\nbogus = 1"), "'rebalance.bogus': unknown key"),
        (lambda t: t.replace("every_bars = 24", "every_bars = -3"), "'rebalance.every_bars'"),
        (lambda t: t + "\n[fees]\ntaker_bps = -5\n", "'fees.taker_bps': expected 0..1000 bps, got -5"),
        (lambda t: t + "\n[futures]\ncontract_size = 0\n", "'futures.contract_size'"),
        (lambda t: t.replace('"DDD"]', '"ZZZ"]'), "unknown symbol 'ZZZ'"),
        (lambda t: t.replace('start = "2024-01-01"', 'start = "2024-03-01"\nend = "2024-02-01"'), "'scenario.end'"),
        (lambda t: t.replace('family = "notional"', 'family = "magic"'), "unknown rule 'magic'"),
        (lambda t: t.replace('start = "2024-01-01"', 'start = "2026-01-01"'), "replay window"),
    ],
)
def test_bad_config_exits_2_with_one_line(scenario: Path, tmp_path: Path, capsys, edit, expected: str) -> None:
    scenario.write_text(edit(CONFIG), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out)]) == 2
    assert expected in _error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("corrupt", "column", "fragment"),
    [
        (lambda df: df.assign(close=df["close"].where(df.index != 50, np.nan)), "close", "row 50"),
        (lambda df: df.assign(close=df["close"].where(df.index != 7, -1.0)), "close", "row 7"),
        (lambda df: df.assign(ts=df["ts"].dt.tz_localize(None)), "ts", "tz-aware"),
        (lambda df: pd.concat([df, df.iloc[[10]]], ignore_index=True), "ts", "duplicate"),
    ],
)
def test_bad_data_exits_2_naming_file_column_row(scenario: Path, tmp_path: Path, capsys, corrupt, column, fragment) -> None:
    prices = tmp_path / "prices.parquet"
    corrupt(pd.read_parquet(prices)).to_parquet(prices, index=False)
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "prices.parquet" in line and f"column '{column}'" in line and fragment in line
    assert not out.exists()


def test_output_path_that_is_a_file_is_refused(scenario: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    assert main(["run", str(scenario), "--out", str(target), "--no-report"]) == 2
    assert "is a file" in _error_line(capsys)
    assert target.read_text() == "keep me"


def test_non_empty_output_needs_force(scenario: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("previous run")
    assert main(["run", str(scenario), "--out", str(out), "--no-report"]) == 2
    assert "--force" in _error_line(capsys)
    assert (out / "old.txt").exists()
    assert main(["run", str(scenario), "--out", str(out), "--no-report", "--force"]) == 0
    assert not (out / "old.txt").exists() and (out / "summary.json").exists()


def test_usage_error_is_one_line_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2
    assert "required" in _error_line(capsys)


def test_console_entry_point_prints_no_traceback(scenario: Path, tmp_path: Path) -> None:
    scenario.write_text(CONFIG.replace("[rebalance]", "[rebalance]\nbogus = 1"), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "backtest.cli", "run", str(scenario), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
