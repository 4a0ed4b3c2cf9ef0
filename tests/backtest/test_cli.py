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

from conftest import NOTIONAL_DAILY, write_notional_scenario

CONFIG = NOTIONAL_DAILY


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    return write_notional_scenario(tmp_path)


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


def test_console_script_exits_with_the_code_of_main_and_the_heap_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed ``hedgebt`` script is ``console_main``: main's exit code, and the objects left
    out of the interpreter's final garbage collection (``gc.freeze``)."""
    import gc
    from importlib.metadata import entry_points

    from backtest import cli

    (script,) = entry_points(group="console_scripts", name="hedgebt")
    assert script.value == "backtest.cli:console_main"
    monkeypatch.setattr(cli, "main", lambda: 3)
    assert gc.get_freeze_count() == 0
    try:
        with pytest.raises(SystemExit) as info:
            cli.console_main()
        assert info.value.code == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_two_runs_give_byte_identical_report_summary_and_metrics(scenario: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["run", str(scenario), "--out", str(tmp_path / name)]) == 0
    for f in ("report.pdf", "summary.json", "metrics.csv", "events.csv", "ledger.parquet", "figures/equity.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_report_re_renders_from_saved_results_without_simulating(scenario: Path, tmp_path: Path, monkeypatch) -> None:
    full, bare = tmp_path / "full", tmp_path / "bare"
    assert main(["run", str(scenario), "--out", str(full)]) == 0
    assert main(["run", str(scenario), "--out", str(bare), "--no-report"]) == 0
    assert not (bare / "report.pdf").exists()

    import backtest.results

    def no_simulation(*args, **kwargs):  # the report command must not re-run anything
        raise AssertionError("re-simulated")

    monkeypatch.setattr(backtest.results, "run", no_simulation)
    monkeypatch.setattr("backtest.market.run_variant", no_simulation)
    assert main(["report", str(bare)]) == 0
    for f in ("report.pdf", "metrics.csv", "events.csv", "figures/margin.png"):
        assert (bare / f).read_bytes() == (full / f).read_bytes(), f


def test_report_of_a_folder_without_results_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "not a result folder" in _error_line(capsys)


def test_ingested_vendor_samples_feed_a_run(tmp_path: Path) -> None:
    """The three real vendor samples: ingest them, then run a daily scenario on the datasets."""
    raw = Path(__file__).resolve().parents[1] / "data" / "raw"
    fet, rndr = tmp_path / "fet.parquet", tmp_path / "rndr.parquet"
    assert main(["ingest", str(raw / "freqtrade_FET_USDT-1d.json"), "--symbol", "FET", "--into", str(fet)]) == 0
    assert main(["ingest", str(raw / "cryptodatadownload_Binance_FETUSDT_d.csv"), "--symbol", "FET", "--into", str(fet)]) == 0
    assert main(["ingest", str(raw / "yahoo_RNDR-USD_close.csv"), "--symbol", "RNDR", "--into", str(rndr),
                 "--yahoo-shift-days", "-1"]) == 0
    (tmp_path / "daily.toml").write_text(
        """
[scenario]
start = "2021-01-01"
end = "2024-06-30"
bar = "1D"
[data]
prices = ["fet.parquet", "rndr.parquet"]
ohlc = ""
[position]
coins = ["FET"]
units = [100000]
[index]
constituents = ["RNDR"]
min_constituents = 1
max_weight = 1.0
[rebalance]
every_bars = 1
whole_contracts = false
[[rules]]
family = "notional"
""",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "daily.toml"), "--out", str(out), "--no-report"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["period"]["bar"] == "1D" and summary["period"]["bars"] > 1200
    assert {i["path"] for i in summary["inputs"]} == {"fet.parquet", "rndr.parquet", "events.toml"}
    ledger = pd.read_parquet(out / "ledger.parquet")
    day = ledger[ledger["ts"] == pd.Timestamp("2024-07-22", tz="UTC")]
    assert day.empty  # after `end`
    row = ledger[ledger["ts"] == pd.Timestamp("2024-06-03", tz="UTC")]
    raw_cdd = pd.read_csv(raw / "cryptodatadownload_Binance_FETUSDT_d.csv", skiprows=0)
    expected = float(raw_cdd.loc[raw_cdd["Date"] == "2024-06-03", "Close"].iloc[0])
    assert float(row["alt_price"].iloc[0]) == expected
    # independent check from the raw vendor files: a 1:1 daily hedge with a one-token index has
    # HE ~ 1 - Var(r_FET - r_RNDR) / Var(r_FET) (here negative: RNDR alone hedges FET badly)
    yahoo = pd.read_csv(raw / "yahoo_RNDR-USD_close.csv", parse_dates=["date"])
    rndr_px = pd.Series(yahoo["value"].to_numpy(), index=pd.DatetimeIndex(yahoo["date"]).tz_localize("UTC") - pd.Timedelta(days=1))
    fet_px = ledger.set_index("ts")["alt_price"]
    both = pd.concat([fet_px, rndr_px.reindex(fet_px.index)], axis=1).to_numpy()
    r = both[1:] / both[:-1] - 1
    he_hand = 1 - np.var(r[:, 0] - r[:, 1], ddof=1) / np.var(r[:, 0], ddof=1)
    assert summary["rules"]["notional"]["hedge_effectiveness"] == pytest.approx(he_hand, abs=0.01)


def test_version_quiet_progress_and_file_list(scenario: Path, tmp_path: Path, capsys) -> None:
    from backtest.versions import hedgebt_version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"hedgebt {hedgebt_version()}"
    assert main(["run", str(scenario), "--out", str(tmp_path / "q"), "--no-report", "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    assert main(["run", str(scenario), "--out", str(tmp_path / "o"), "--no-report"]) == 0
    loud = capsys.readouterr()
    assert loud.err == ""  # off a terminal, stages go to stdout: stderr is for the one error line
    assert "hedgebt: simulating scenario.toml ...\n" in loud.out and "hedgebt: simulating scenario.toml: " in loud.out
    assert loud.out.strip().splitlines()[-1] == f"  wrote {tmp_path / 'o'}/: ledger.parquet, summary.json"


def test_bad_flag_names_the_command(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--bogus"])
    assert exc.value.code == 2
    assert "(see 'hedgebt run --help')" in capsys.readouterr().err


def test_own_coin_against_the_bundled_index_in_three_commands(tmp_path: Path, capsys) -> None:
    """README "Your own coin": ingest a vendor file, list it beside the bundled prices, run."""
    raw = Path(__file__).resolve().parents[1] / "data" / "raw" / "cryptodatadownload_Binance_FETUSDT_d.csv"
    assert main(["ingest", str(raw), "--symbol", "MYFET", "--into", str(tmp_path / "mine.parquet")]) == 0
    (tmp_path / "s.toml").write_text(
        '[scenario]\nstart = "2022-01-01"\nend = "2022-12-31"\nbar = "1D"\n'
        '[data]\nprices = ["binance_spot_1h_close.parquet", "mine.parquet"]\n'
        '[position]\ncoins = ["MYFET"]\nunits = [100000]\n', encoding="utf-8")
    assert main(["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scenario"]["coins"] == ["MYFET"]
    assert summary["period"]["bars"] == 365
    assert 0.3 < summary["rules"]["notional"]["hedge_effectiveness"] < summary["oracle_r2"] + 0.05


def test_a_bundled_scenario_runs_by_name_from_any_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    # found by name: the error is about its content (no [compare] table), not a missing file
    assert main(["compare", "demo.toml", "--out", "o", "--quiet"]) == 2
    assert "no [compare] table" in capsys.readouterr().err
    missing = main(["run", "no_such.toml", "--out", "o2", "--no-report", "--quiet"])
    assert missing == 2 and "config file not found: no_such.toml" in capsys.readouterr().err


def test_compile_announcement_looks_for_the_bar_loop_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The announcement asks numba's cache of this process (NUMBA_CACHE_DIR or the source
    tree's __pycache__) whether it holds the bar loop compiled from the current source."""
    from backtest import background_compile, cli
    from backtest import kernels as K

    class _Index:
        def __init__(self, index: dict) -> None:
            self.index = index

        def _load_index(self) -> dict:
            return self.index

    class _Cache:
        _cache_path = str(tmp_path)

    cache = _Cache()
    monkeypatch.setattr(K._simulate_group_nb, "_cache", cache)
    cache._cache_file = _Index({})  # no index, or one written from another source: the loop compiles
    assert not cli._kernels_cached()
    assert background_compile.kernel_cache_state() == "missing"
    cache._cache_file = _Index({("sig", "magic"): "kernels._simulate_group_nb-1297.py311.1.nbc"})
    assert cli._kernels_cached()
