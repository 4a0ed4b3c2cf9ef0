"""Issue 11: nothing lost, nothing silently wrong — the cases that need real processes,
concurrency or a successful run (the exit-2 cases are in ``test_bad_input_corpus.py``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest.results as results_mod
from backtest.atomic import OutputDir, atomic_file, clean_stale, terminate_as_exit, write_text, written_note
from backtest.cli import main
from backtest.errors import OutputError
from backtest.ingest import ingest

from conftest import SYNTHETIC_SCENARIO, write_synthetic_prices

ROOT = Path(__file__).resolve().parents[2]
BASE = SYNTHETIC_SCENARIO + '[[rules]]\nfamily = "notional"\n'
HOUR_MS = 3_600_000
T0 = 1_704_067_200_000


def _scenario(tmp: Path, text: str = BASE) -> Path:
    write_synthetic_prices(tmp / "prices.parquet", n_days=30)
    (tmp / "scenario.toml").write_text(text, encoding="utf-8")
    return tmp / "scenario.toml"


def _klines(n: int, start: int = T0, close: float = 1.5) -> str:
    return "".join(
        f"{start + k * HOUR_MS},1,2,0.5,{close},100,{start + (k + 1) * HOUR_MS - 1},150,10,50,75,0\n" for k in range(n)
    )


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "backtest.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# -- output folder claim ----------------------------------------------------------------------


def test_a_folder_created_during_the_run_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = _scenario(tmp_path)
    out = tmp_path / "out"
    real_run = results_mod.run

    def run_then_someone_writes(cfg, **kwargs):  # another user creates the folder while we simulate
        result = real_run(cfg, **kwargs)
        out.mkdir()
        (out / "mine.txt").write_text("precious")
        return result

    monkeypatch.setattr(results_mod, "run", run_then_someone_writes)
    assert main(["run", str(config), "--out", str(out), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "appeared or changed" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    assert (out / "mine.txt").read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_an_empty_folder_changed_during_the_run_is_refused_and_force_replaces(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    claim = OutputDir(out)
    claim.check()
    (out / "late.txt").write_text("x")
    with pytest.raises(OutputError, match="appeared or changed"):
        with claim as tmp:
            (tmp / "a.txt").write_text("new")
    assert (out / "late.txt").exists() and not (out / "a.txt").exists()
    forced = OutputDir(out, force=True)
    forced.check()
    with forced as tmp:
        (tmp / "a.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_two_claims_of_one_new_folder_one_wins_the_other_refuses(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, second = OutputDir(out), OutputDir(out)
    first.check()
    second.check()
    with first as tmp:
        (tmp / "first.txt").write_text("1")
    with pytest.raises(OutputError, match="appeared"):
        with second as tmp:
            (tmp / "second.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["first.txt"]


def test_force_replaces_an_old_result_folder(tmp_path: Path) -> None:
    config = _scenario(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["run", str(config), "--out", str(out), "--no-report", "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ledger.parquet", "summary.json"]


def test_stale_temporary_folders_of_dead_processes_are_removed_and_reported(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = _scenario(tmp_path)
    dead = _dead_pid()
    stale = tmp_path / f".out.tmp-{dead}-deadbeef"
    stale.mkdir()
    (stale / "summary.json").write_text("{}")
    alive = tmp_path / f".out.tmp-{os.getppid()}-cafecafe"  # a live process: left alone
    alive.mkdir()
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    err = capsys.readouterr().err
    assert not stale.exists() and alive.exists()
    assert f"removed {stale}" in err and f"process {dead}" in err
    alive.rmdir()


def test_atomic_file_never_writes_through_a_linked_folder_and_leaves_no_temp(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "figures")
    with pytest.raises(OutputError, match="symbolic link"):
        write_text(tmp_path / "figures" / "x.png", "x")
    assert list((tmp_path / "outside").iterdir()) == []
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "f.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "outside"]
    dead = _dead_pid()
    (tmp_path / f".f.txt.tmp-{dead}-00000000").write_text("stale")
    assert clean_stale(tmp_path, "f.txt", report=False) == [tmp_path / f".f.txt.tmp-{dead}-00000000"]


def test_sigterm_during_the_write_removes_the_temporary_folder(tmp_path: Path) -> None:
    config = _scenario(tmp_path)
    proc = _cli("run", str(config), "--out", "out", cwd=tmp_path)  # with the report: seconds inside the claim
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir()):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err.decode()
    assert not (tmp_path / "out").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


class _SignalInFinaliser:
    """Sends this process SIGTERM from ``__del__``: the handler's ``SystemExit`` is raised where
    Python only prints exceptions ("Exception ignored in ..."), as when the signal lands in an
    ``os.fork`` at-fork hook (seen once in ``test_sigterm_during_the_write...`` with a cold cache:
    the run went on and exited 0 with its output written)."""

    signum = signal.SIGTERM

    def __del__(self) -> None:
        os.kill(os.getpid(), self.signum)
        time.sleep(0.05)  # the handler runs here, inside __del__


class _SigintInFinaliser(_SignalInFinaliser):
    signum = signal.SIGINT


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_whose_exit_was_swallowed_still_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = _scenario(tmp_path)
    real_run = results_mod.run
    finalisers: list[bool] = []

    def run_then_swallow(cfg, **kwargs):
        result = real_run(cfg, **kwargs)
        _SignalInFinaliser()  # dropped at once: __del__ runs, its SystemExit is only printed
        finalisers.append(True)  # the run went on past the signal
        return result

    monkeypatch.setattr(results_mod, "run", run_then_swallow)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(config), "--out", str(tmp_path / "out"), "--no-report"])
    assert exc.value.code == 143 and finalisers == [True]
    # one line: the swallowed SystemExit's "Exception ignored in ..." report is not printed
    assert capsys.readouterr().err.strip().splitlines() == ["hedgebt: terminated (SIGTERM); no output was written"]
    assert not (tmp_path / "out").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_sigterm_stops_the_command_before_its_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The report (the longest part) is not drawn after a signal swallowed during the run: the
    first file the save writes (``summary.json``, before the report) is a commit point."""
    import backtest.api as api_mod

    config = _scenario(tmp_path)
    real_run = results_mod.run
    reports: list[bool] = []

    def run_then_swallow(cfg, **kwargs):
        result = real_run(cfg, **kwargs)
        _SignalInFinaliser()
        return result

    monkeypatch.setattr(results_mod, "run", run_then_swallow)
    monkeypatch.setattr(api_mod.Result, "_write_report", lambda *a, **k: reports.append(True))
    with pytest.raises(SystemExit) as exc:
        main(["run", str(config), "--out", str(tmp_path / "out")])
    assert exc.value.code == 143 and reports == []
    assert capsys.readouterr().err.strip().splitlines()[-1] == "hedgebt: terminated (SIGTERM); no output was written"
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_whose_interrupt_was_swallowed_still_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = _scenario(tmp_path)
    real_run = results_mod.run

    def run_then_swallow(cfg, **kwargs):
        result = real_run(cfg, **kwargs)
        _SigintInFinaliser()  # its KeyboardInterrupt is only printed
        return result

    monkeypatch.setattr(results_mod, "run", run_then_swallow)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--no-report"]) == 130
    assert "interrupted; no output was written" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_no_file_is_moved_into_place_after_a_swallowed_sigterm(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("old")
    with pytest.raises(SystemExit) as exc, terminate_as_exit():
        with atomic_file(tmp_path / "kept.txt") as tmp:
            tmp.write_text("new")
            _SignalInFinaliser()
    assert exc.value.code == 143
    assert (tmp_path / "kept.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def _signal_after_the_rename(monkeypatch: pytest.MonkeyPatch, target: Path, signum: int) -> list[bool]:
    """Send this process ``signum`` from the ``fsync_dir`` that follows the move into ``target``."""
    import backtest.atomic as atomic

    sent: list[bool] = []
    real = atomic.fsync_dir

    def fsync_then_signal(path: Path) -> None:
        real(path)
        if not sent and (target / "summary.json").is_file() and not (target / "OLD").exists():
            sent.append(True)
            os.kill(os.getpid(), signum)
            time.sleep(0.05)  # the handler runs here: recorded, raised when the claim is over

    monkeypatch.setattr(atomic, "fsync_dir", fsync_then_signal)
    return sent


@pytest.mark.parametrize("force", [False, True])
def test_a_sigterm_during_the_claim_lets_it_finish_and_says_the_output_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], force: bool) -> None:
    """Was "no output was written" with the output in place, and with --force the replaced folder's
    removal could be cut short (left as a temporary folder, then deleted by the next run)."""
    config = _scenario(tmp_path)
    out = tmp_path / "out"
    if force:
        out.mkdir()
        (out / "OLD").write_text("the previous run", encoding="utf-8")
    sent = _signal_after_the_rename(monkeypatch, out, signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(config), "--out", str(out), "--no-report", *(["--force"] if force else [])])
    assert exc.value.code == 143 and sent == [True]
    assert capsys.readouterr().err.strip().splitlines() == [
        f"hedgebt: terminated (SIGTERM); the output was already written: {out}"]
    assert sorted(p.name for p in out.iterdir()) == ["ledger.parquet", "summary.json"]  # whole, new
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_ctrl_c_during_the_report_moves_leaves_a_whole_new_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """hedgebt report: a signal among the moves of the re-rendered files left a half-old,
    half-new report; now every file is moved, then the command stops."""
    import backtest.atomic as atomic

    config = _scenario(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    (out / "metrics.csv").write_text("old\n", encoding="utf-8")
    (out / "report.pdf").write_bytes(b"old")
    real_replace = atomic.os.replace
    moved: list[str] = []

    def replace_then_interrupt(src, dst):  # type: ignore[no-untyped-def]
        real_replace(src, dst)
        if ".staging.tmp-" in str(src) and ".staging.tmp-" not in str(dst):  # a move out of the stage
            moved.append(Path(dst).name)
            if len(moved) == 1:  # after the first move
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)

    monkeypatch.setattr(atomic.os, "replace", replace_then_interrupt)
    assert main(["report", str(out)]) == 130
    monkeypatch.undo()
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hedgebt: interrupted; the output was already written: {out}")
    assert (out / "metrics.csv").read_text(encoding="utf-8") != "old\n"
    assert (out / "report.pdf").read_bytes()[:4] == b"%PDF"
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]


def test_figure_workers_ignore_ctrl_c_and_default_sigterm() -> None:
    """Ctrl-C reaches every process of the terminal's group: the workers leave it to the parent
    (they printed KeyboardInterrupt tracebacks, and one dying mid-figure could hang the parent)."""
    import multiprocessing as mp

    from reports.figures import _default_sigterm

    with mp.get_context("fork").Pool(1, initializer=_default_sigterm) as pool:
        handlers = pool.apply(_handlers)
    assert handlers == (signal.SIG_IGN, signal.SIG_DFL)


def _handlers() -> tuple[object, object]:
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


def test_an_error_closing_a_half_written_pdf_does_not_hide_the_signal(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen once: SIGTERM while a page was written, then matplotlib's close() raised
    AssertionError('No offset for object ...'): exit 1 with a traceback instead of 143."""
    from matplotlib.backends.backend_pdf import PdfPages

    from reports.pdf import _pdf_doc

    def broken_close(self):  # type: ignore[no-untyped-def]
        raise AssertionError("No offset for object 13 (page contents)")

    monkeypatch.setattr(PdfPages, "close", broken_close)
    with pytest.raises(SystemExit) as exc, _pdf_doc(tmp_path / "x.pdf", "t") as doc:
        doc.new_page()
        raise SystemExit(143)
    assert exc.value.code == 143
    assert not list(tmp_path.iterdir())


def test_a_folder_claimed_inside_a_temporary_folder_is_not_yet_written(tmp_path: Path) -> None:
    """The demo claims each scenario's folder inside its own temporary folder: a signal before the
    outer claim must still say "no output was written"."""
    with terminate_as_exit():
        with OutputDir(tmp_path / "out") as outer:
            with OutputDir(outer / "quarterly") as inner:
                write_text(inner / "a.txt", "x")
            assert (outer / "quarterly" / "a.txt").is_file()
            assert written_note() == "no output was written"  # the inner folder is claimed, the outer not yet
        assert written_note() == f"the output was already written: {tmp_path / 'out'}"


# -- ingest -----------------------------------------------------------------------------------


def test_concurrent_ingests_serialise_and_lose_nothing(tmp_path: Path) -> None:
    symbols = ("AAA", "BBB", "CCC", "DDD")
    for k, s in enumerate(symbols):
        (tmp_path / f"{s}.csv").write_text(_klines(2000, close=1.0 + 0.2 * k))
    procs = [
        _cli("ingest", f"{s}.csv", "--symbol", s, "--into", "ds.parquet", "--format", "binance", cwd=tmp_path)
        for s in symbols
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    df = pd.read_parquet(tmp_path / "ds.parquet")
    assert df.groupby("symbol").size().to_dict() == {s: 2000 for s in symbols}
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_linked_dataset_is_written_through_to_its_target(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "a.csv").write_text(_klines(5))
    ingest([tmp_path / "a.csv"], symbol="FET", into=tmp_path / "store" / "real.parquet", format="binance")
    os.symlink(tmp_path / "store" / "real.parquet", tmp_path / "ds.parquet")
    (tmp_path / "b.csv").write_text(_klines(5, start=T0 + 5 * HOUR_MS))
    report = ingest([tmp_path / "b.csv"], symbol="FET", into=tmp_path / "ds.parquet", format="binance")
    assert report.rows_added == 5 and report.path == tmp_path / "ds.parquet"
    assert (tmp_path / "ds.parquet").is_symlink()
    assert len(pd.read_parquet(tmp_path / "store" / "real.parquet")) == 10


def test_ingest_reports_missing_bars_in_what_it_added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _klines(10).splitlines(keepends=True)
    (tmp_path / "gappy.csv").write_text("".join(rows[:3] + rows[6:]))  # 3 hours missing
    assert main(["ingest", str(tmp_path / "gappy.csv"), "--symbol", "FET", "--into", str(tmp_path / "ds.parquet")]) == 0
    assert "7 added" in capsys.readouterr().out
    report = ingest([tmp_path / "gappy.csv"], symbol="FET", into=tmp_path / "other.parquet", format="binance")
    assert report.missing_bars == 3


def test_a_timestamp_that_would_wrap_is_refused_not_stored_in_1702(tmp_path: Path) -> None:
    from backtest.errors import DataError

    (tmp_path / "good.csv").write_text(_klines(3))
    ingest([tmp_path / "good.csv"], symbol="FET", into=tmp_path / "ds.parquet", format="binance")
    before = (tmp_path / "ds.parquet").read_bytes()
    bad = _klines(1, start=9_999_999_999_999)
    (tmp_path / "bad.csv").write_text(bad)
    with pytest.raises(DataError, match="2286"):
        ingest([tmp_path / "bad.csv"], symbol="FET", into=tmp_path / "ds.parquet", format="binance")
    assert (tmp_path / "ds.parquet").read_bytes() == before


# -- numerics ---------------------------------------------------------------------------------


def test_a_flat_coin_writes_null_with_the_reason_exits_0_and_the_report_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _scenario(tmp_path)
    df = pd.read_parquet(tmp_path / "prices.parquet")
    df.loc[df["symbol"] == "COIN", "close"] = 2.0
    df.to_parquet(tmp_path / "prices.parquet", index=False)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "HE(1D) n/a" in out and "the coin's price never moved" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    rule = summary["rules"]["notional"]
    assert rule["hedge_effectiveness"] is None
    assert rule["undefined"]["hedge_effectiveness"] == "unhedged variance is zero: the coin's price never moved"
    assert rule["vol_unhedged_ann"] == 0.0
    assert main(["report", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.pdf").stat().st_size > 0


def test_summary_records_the_ledger_hash(tmp_path: Path) -> None:
    import hashlib

    config = _scenario(tmp_path)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["ledger_sha256"] == hashlib.sha256((tmp_path / "out" / "ledger.parquet").read_bytes()).hexdigest()


def test_undefined_reasons_name_each_non_finite_figure() -> None:
    summ = {"n_ret": 100, "m2_u": 0.0}
    metrics = {"hedge_effectiveness": float("nan"), "vol_hedged_ann": 0.3, "cost_drag_bps_per_year": float("inf"),
               "trades": 3, "pnl": {"total": 1.0}}
    reasons = results_mod.undefined_reasons(metrics, summ)
    assert reasons == {
        "hedge_effectiveness": results_mod.FLAT_COIN_REASON,
        "cost_drag_bps_per_year": "the mean coin notional or the period length is zero",
    }
    assert results_mod.undefined_reasons(metrics, {"n_ret": 1, "m2_u": 0.0})["hedge_effectiveness"].startswith("fewer")


def test_warnings_are_held_back_when_the_command_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    import backtest.cli as cli
    from backtest.errors import DataError

    def noisy(folder: Path) -> None:  # a library warning, then hedgebt's error
        warnings.warn("Could not infer format, so each element will be parsed individually", UserWarning)
        raise DataError("x.csv", "bad row", row=3)

    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "ledger.parquet").write_bytes(b"")
    monkeypatch.setattr(cli, "_refuse_links", noisy)
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["hedgebt: error: x.csv: row 3: bad row"]


# -- hypothesis: config values ----------------------------------------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from backtest.config import BOUNDS, config_from_mapping  # noqa: E402
from backtest.errors import ConfigError  # noqa: E402

_FLOAT_KEYS = sorted(k for k in BOUNDS if k.split(".")[1] not in (
    "max_fill_bars", "min_history_days", "vol_lookback_days", "min_constituents", "grace_bars", "every_bars"))


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(_FLOAT_KEYS), value=st.floats(allow_nan=True, allow_infinity=True))
def test_every_bounded_float_is_accepted_only_when_finite_and_in_range(key: str, value: float) -> None:
    section, name = key.split(".")
    v = [value] if section == "position" else value
    try:
        config_from_mapping({section: {name: v}})
    except ConfigError as exc:
        assert exc.key.startswith(key), (exc.key, key)
        return
    assert np.isfinite(value) and abs(value) <= BOUNDS[key]


def test_holdings_times_with_mixed_offsets_are_each_converted_to_utc() -> None:
    from backtest.data import holdings_times

    ts = pd.Series(["2024-01-01T02:00:00+02:00", "2024-01-01T01:00:00Z", "2024-01-01T03:30:00+01:30"])
    got = holdings_times(ts, Path("h.csv"))
    assert list(got) == [pd.Timestamp("2024-01-01 00:00", tz="UTC"), pd.Timestamp("2024-01-01 01:00", tz="UTC"),
                         pd.Timestamp("2024-01-01 02:00", tz="UTC")]


# -- hypothesis: price frames -----------------------------------------------------------------

_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -1.0, 1e9, 1e9 * (1 + 1e-15), 2e9, 1e300, 5e-324]),
)


@settings(max_examples=150, deadline=None)
@given(row=st.integers(0, 47), column=st.sampled_from(["open", "high", "low", "close", "volume"]), value=_VALUES)
def test_a_price_frame_is_accepted_only_with_finite_bounded_values(row: int, column: str, value: float) -> None:
    """One value replaced in a valid OHLCV frame: accepted iff the frame still obeys every rule,
    else a DataError naming the file, the column (or the OHLC relation) and the row."""
    from backtest.data import MAX_PRICE, MAX_VOLUME, REL_TOL, validate_long_frame
    from backtest.errors import DataError

    ts = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    df = pd.DataFrame({"ts": ts, "symbol": "FET", "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0})
    df["symbol"] = df["symbol"].astype("string")
    df.loc[row, column] = value
    r = df.loc[row]
    if column == "volume":
        ok = np.isfinite(value) and 0 <= value <= MAX_VOLUME
    else:
        prices_ok = all(np.isfinite(r[c]) and 0 < r[c] <= MAX_PRICE for c in ("open", "high", "low", "close"))
        def le(a: float, b: float) -> bool:  # the validator's relative tolerance
            return a - b <= REL_TOL * max(abs(a), abs(b))

        order_ok = all(le(r["low"], r[c]) and le(r[c], r["high"]) for c in ("open", "close")) and le(r["low"], r["high"])
        ok = prices_ok and order_ok
    try:
        validate_long_frame(df, file="f.parquet", price_columns=["open", "high", "low", "close"])
    except DataError as exc:
        assert not ok, str(exc)
        assert str(exc).startswith("f.parquet: column ") and f"row {row}" in str(exc)
        return
    assert ok


@pytest.mark.parametrize("error", ["BrokenProcessPool", "FutureCancelledError"])
def test_lost_workers_are_one_line(error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import backtest.grid as compare_mod

    lost = type(error, (Exception,), {})

    def dispatch(tasks, scheduler, progress):
        raise lost("a worker died")

    monkeypatch.setattr(compare_mod, "_dispatch", dispatch)
    config = _scenario(tmp_path, BASE + '[compare]\n[[compare.rules]]\nfamily = "notional"\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["compare", str(config), "--out", str(tmp_path / "out"), "--no-report", "--scheduler", "processes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and error in err[0] and "lost its workers" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
