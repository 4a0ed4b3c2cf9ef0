"""The Python API: run / compare / load_config, the immutable Result and CompareResult."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import SYNTHETIC_SCENARIO
from records import assert_result_record

import backtest as hb
from backtest.cli import main
from backtest.errors import ConfigError, DataError, OutputError

COMPARE = """
[compare]
[[compare.rules]]
family = "min_variance"
window = [48, 96]
[[compare.rules]]
family = "notional"
[[compare.rebalance]]
mode = "every"
every_bars = [24, 72]
"""


@pytest.fixture
def scenario(synthetic_prices: Path) -> Path:
    path = synthetic_prices.parent / "s.toml"
    path.write_text(SYNTHETIC_SCENARIO + '[[rules]]\nfamily = "notional"\n[[rules]]\nfamily = "ewma"\nhalflife = 48\n'
                    + COMPARE, encoding="utf-8")
    return path


@pytest.fixture
def result(scenario: Path) -> hb.Result:
    return hb.run(scenario)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_result_views_are_pandas_and_immutable(result: hb.Result) -> None:
    assert result.rules == ["notional", "ewma(halflife=48.0)"]
    ledger = result.ledger
    assert isinstance(ledger, pd.DataFrame) and set(ledger["rule"]) == set(result.rules)
    ledger.loc[:, "equity_hedged"] = 0.0  # a caller's copy, not the result
    assert result.ledger["equity_hedged"].abs().sum() > 0
    summary = result.summary
    summary["rules"].clear()
    assert result.summary["rules"]
    metrics = result.metrics
    assert list(metrics["rule"]) == result.rules
    assert {"hedge_effectiveness", "he_ci_lo", "he_ci_hi", "var95_hedged", "cvar95_hedged"} <= set(metrics)
    assert (metrics["he_ci_lo"] <= metrics["hedge_effectiveness"]).all()
    with pytest.raises(AttributeError):
        result.config = None  # type: ignore[misc]


def test_save_writes_the_same_bytes_as_the_cli(result: hb.Result, scenario: Path, tmp_path: Path) -> None:
    assert main(["run", str(scenario), "--out", str(tmp_path / "cli")]) == 0
    result.save(tmp_path / "api")
    cli, api = _tree(tmp_path / "cli"), _tree(tmp_path / "api")
    assert cli.keys() == api.keys() and "report.pdf" in cli
    assert cli == api


def test_load_and_report_need_no_simulation(result: hb.Result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = result.save(tmp_path / "r", report=False)
    assert sorted(p.name for p in folder.iterdir()) == ["ledger.parquet", "summary.json"]
    import backtest.results

    def no_simulation(*_a, **_k):  # pragma: no cover - failing is the point
        raise AssertionError("re-simulated")

    monkeypatch.setattr(backtest.results, "run", no_simulation)
    loaded = hb.Result.load(folder)
    assert loaded.summary == result.summary
    pd.testing.assert_frame_equal(loaded.ledger, result.ledger)
    pd.testing.assert_frame_equal(loaded.metrics, result.metrics)
    files = loaded.report(tmp_path / "rep")
    assert files.pdf.is_file() and files.pages >= 5 and len(files.figures) == 12
    assert (tmp_path / "rep" / "metrics.csv").read_bytes() == (tmp_path / "rep" / "metrics.csv").read_bytes()



def test_a_report_that_fails_halfway_leaves_the_folder_as_it_was(result: hb.Result, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-rendering writes into a staging folder first: a failure after the CSVs and figures
    (here the PDF) leaves every old file in place and no staging folder behind."""
    import reports.render

    folder = result.save(tmp_path / "r")
    good = _tree(folder)
    (folder / "metrics.csv").write_text("an old table\n", encoding="utf-8")  # what a re-render replaces
    (folder / "figures" / "equity.png").write_bytes(b"an old figure")
    before = _tree(folder)

    def broken_pdf(*_a, **_k):
        raise RuntimeError("PDF writer failed")

    monkeypatch.setattr(reports.render, "write_pdf", broken_pdf)
    with pytest.raises(RuntimeError, match="PDF writer failed"):
        hb.Result.load(folder).report(folder)
    assert _tree(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["events.csv", "figures", "ledger.parquet", "metrics.csv",
                                                          "report.pdf", "summary.json"]
    monkeypatch.undo()
    files = hb.Result.load(folder).report(folder)  # and a report that succeeds replaces them
    assert files.pdf == folder / "report.pdf" and all(f.parent == folder / "figures" for f in files.figures)
    assert _tree(folder) == good


@pytest.mark.parametrize(("key", "value", "says"), [
    ("hedge_effectiveness", "abc", "rules.notional.hedge_effectiveness must be a number or null, got 'abc'"),
    ("margin_calls", None, "rules.notional.margin_calls must be a whole number >= 0, got None"),
    ("trades", 2.5, "rules.notional.trades must be a whole number >= 0, got 2.5"),
])
def test_report_of_a_damaged_summary_is_one_line_and_writes_nothing(result: hb.Result, tmp_path: Path, capsys,
                                                                     key: str, value: object, says: str) -> None:
    """A figure of the wrong type in summary.json (was a traceback in the PDF writer, after the
    CSVs and 8 figures had been rewritten)."""
    import json

    folder = result.save(tmp_path / "r")
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    summary["rules"]["notional"][key] = value
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    before = _tree(folder)
    capsys.readouterr()
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert _tree(folder) == before

def test_events_and_figures(result: hb.Result) -> None:
    from matplotlib.figure import Figure

    assert set(result.events()["event"]) == {"nvidia_rally_2024"}  # the one bundled window overlapping 2024 Q1
    fig = result.plot.equity()
    assert isinstance(fig, Figure) and fig.axes[0].get_title()
    external = Figure()
    ax = external.add_subplot()
    assert result.plot.rolling_he(ax=ax) is external and ax.lines
    for name in ("rolling_vol", "drawdowns", "hedge_ratio", "pnl_attribution", "margin"):
        assert isinstance(getattr(result.plot, name)(), Figure), name


def test_overrides_are_validated_like_the_file(scenario: Path) -> None:
    config = hb.load_config(scenario, margin={"reserve_usd": 0}, rebalance={"every_bars": 72})
    assert config.margin.reserve_usd == 0 and config.margin.collateral_usd == 250_000  # other keys kept
    assert config.rebalance.every_bars == 72
    with pytest.raises(ConfigError, match="fees.taker_bps"):
        hb.load_config(scenario, fees={"taker_bps": -5})
    with pytest.raises(ConfigError, match="unknown key"):
        hb.run(scenario, margin={"reserv_usd": 0})


def test_run_accepts_a_config_with_overrides(scenario: Path) -> None:
    a = hb.run(hb.load_config(scenario), rebalance={"every_bars": 72})
    b = hb.run(hb.load_config(scenario, rebalance={"every_bars": 72}))
    assert a.summary_json == b.summary_json
    assert a.summary_json != hb.run(scenario).summary_json


def test_bundled_scenario_by_name() -> None:
    assert hb.bundled_scenario("demo.toml").is_file()
    with pytest.raises(ConfigError, match="no bundled scenario"):
        hb.bundled_scenario("nope.toml")


def test_load_config_takes_a_bundled_name_like_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no demo.toml here: the bundled one is read
    config = hb.load_config("demo.toml", rebalance={"every_bars": 72})
    assert Path(config.base_dir) == hb.bundled_scenario("demo.toml").parent and config.rebalance.every_bars == 72
    (tmp_path / "demo.toml").write_text("[position]\nkind = \"notional\"\nnotional_usd = [1000.0]\n")
    assert Path(hb.load_config("demo.toml").base_dir) == tmp_path  # a file of that name here wins
    with pytest.raises(ConfigError, match="config file not found"):
        hb.load_config("nope.toml")


def test_compare_result(scenario: Path, tmp_path: Path) -> None:
    grid = hb.compare(scenario)
    table = grid.table
    assert len(table) == 3 * 2 and set(table["rank"]) == set(range(1, 7))
    assert len(grid.best()) == 1 and grid.best()["rank"].iloc[0] == 1
    assert grid.info["rank_by"] == "hedge_effectiveness"
    folder = grid.save(tmp_path / "g")
    assert {"compare.csv", "compare.parquet", "compare.json", "compare.pdf"} <= {p.name for p in folder.iterdir()}
    assert_result_record(json.loads((folder / "compare.json").read_text(encoding="utf-8")),
                         {"prices": scenario.parent / "prices.parquet"}, events=True)
    again = hb.CompareResult.load(folder)
    pd.testing.assert_frame_equal(again.table, table, check_dtype=False)
    assert main(["compare", str(scenario), "--out", str(tmp_path / "cli"), "--no-report"]) == 0
    assert (tmp_path / "cli" / "compare.csv").read_bytes() == (folder / "compare.csv").read_bytes()


def test_report_cli_rerenders_a_compare_folder(scenario: Path, tmp_path: Path, capsys) -> None:
    folder = hb.compare(scenario).save(tmp_path / "g", report=False)
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    assert (folder / "compare.pdf").is_file()
    wrote = [line for line in capsys.readouterr().out.splitlines() if "wrote" in line]
    assert wrote and "compare.pdf" in wrote[0] and "compare.csv" not in wrote[0]  # only what it re-rendered
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_report_cli_lists_only_the_files_it_wrote(result: hb.Result, tmp_path: Path, capsys) -> None:
    folder = result.save(tmp_path / "r", report=False)
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    wrote = [line for line in capsys.readouterr().out.splitlines() if "wrote" in line]
    assert wrote and "report.pdf" in wrote[0] and "metrics.csv" in wrote[0]
    assert "summary.json" not in wrote[0] and "ledger.parquet" not in wrote[0]


def test_load_refuses_a_folder_that_is_not_a_result(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="summary.json"):
        hb.Result.load(tmp_path)


def test_import_is_light_and_leaves_matplotlib_alone() -> None:
    code = (
        "import sys, matplotlib; matplotlib.use('svg'); import backtest, reports, reports.figures; "
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
        "import backtest as hb; hb.__version__; "
        "heavy = [m for m in ('numba', 'backtest.engine') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stress_and_scan_stay_functions_once_their_modules_are_imported() -> None:
    """``backtest.stress`` / ``backtest.scan`` were also module names: importing the module (as the
    first call did) replaced the package's function with it ('module' object is not callable)."""
    import backtest.api
    import backtest.hedgeability  # noqa: F401
    import backtest.margin_stress  # noqa: F401

    assert hb.stress is backtest.api.stress and hb.scan is backtest.api.scan


def test_report_into_a_relative_folder(result: hb.Result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Was a ValueError after the files were moved into place (a relative folder against the
    staged files' absolute paths)."""
    monkeypatch.chdir(tmp_path)
    files = result.report("rel")
    assert files.pdf == Path("rel/report.pdf") and files.pdf.is_file()
    assert [f.parent for f in files.figures] == [Path("rel/figures")] * 12 and all(f.is_file() for f in files.figures)
    assert not [p for p in (tmp_path / "rel").iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize(("where", "says"), [
    ("", "empty path"),
    ("a_file", "a_file: is a file, expected a folder"),
    ("a_file/sub", "a_file/sub: cannot create the folder"),
])
def test_report_into_a_bad_folder_is_an_output_error(result: hb.Result, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, where: str, says: str) -> None:
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    (here / "a_file").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputError, match=says):
        result.report(where)
    assert sorted(p.name for p in here.iterdir()) == ["a_file"]
    assert (here / "a_file").read_text(encoding="utf-8") == "mine"


def test_report_with_an_unknown_event_creates_no_folder(result: hb.Result, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bogus"):
        result.report(tmp_path / "new", events=["bogus"])
    assert not (tmp_path / "new").exists()


def test_load_refuses_a_ledger_changed_after_the_run(result: hb.Result, tmp_path: Path) -> None:
    """Result.load checked the schema only, and .save() then wrote the changed ledger with a fresh,
    matching hash: the figures of summary.json no longer came from that ledger."""
    folder = result.save(tmp_path / "r", report=False)
    ledger = pd.read_parquet(folder / "ledger.parquet")
    ledger.loc[0, "equity_hedged"] += 1.0
    ledger.to_parquet(folder / "ledger.parquet", index=False)
    with pytest.raises(DataError, match="does not match summary.json's ledger_sha256"):
        hb.Result.load(folder)


def test_load_refuses_a_summary_without_its_config(result: hb.Result, tmp_path: Path) -> None:
    """Was read as the defaults (the demo's FET position) in silence."""
    folder = result.save(tmp_path / "r", report=False)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    del summary["config"]
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="summary.json: has no config"):
        hb.Result.load(folder)


def test_saved_files_do_not_follow_the_callers_matplotlib_settings(result: hb.Result, tmp_path: Path) -> None:
    """A notebook's style (here a dark background, thick lines, big text) changed every PNG and the PDF."""
    import matplotlib

    plain = result.save(tmp_path / "plain")
    with matplotlib.rc_context({"axes.facecolor": "black", "figure.facecolor": "0.2", "lines.linewidth": 4.0,
                                "font.size": 20.0, "axes.prop_cycle": matplotlib.cycler(color=["w", "y"])}):
        styled = result.save(tmp_path / "styled")
        assert matplotlib.rcParams["axes.facecolor"] == "black"  # the caller's settings are left alone
    assert _tree(plain) == _tree(styled)


@pytest.mark.parametrize("window_days", [0, -5, float("nan"), float("inf"), "30", None])
def test_a_rolling_window_that_is_not_a_positive_number_of_days_is_refused(result: hb.Result, window_days) -> None:
    for plot in (result.plot.rolling_vol, result.plot.rolling_he, result.plot.rolling_beta):
        with pytest.raises(ConfigError, match="'window_days': expected a number of days > 0"):
            plot(window_days=window_days)


@pytest.mark.parametrize("call", [
    lambda s: hb.run(s, progress=5),
    lambda s: hb.stress(s, paths=10, horizon_days=1, progress="yes"),
    lambda s: hb.compare(s, progress=None),
    lambda s: hb.scan(s, progress=1),
])
def test_a_progress_argument_of_the_wrong_type_is_a_config_error(scenario: Path, call, monkeypatch) -> None:
    import backtest.results

    monkeypatch.setattr(backtest.results, "run", lambda *a, **k: pytest.fail("the run started"))
    with pytest.raises(ConfigError, match="'progress': expected"):
        call(scenario)


def test_result_save_and_report_check_progress_before_writing(result: hb.Result, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'progress'"):
        result.save(tmp_path / "a", progress=3)
    with pytest.raises(ConfigError, match="'progress'"):
        result.report(tmp_path / "b", progress=3)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
