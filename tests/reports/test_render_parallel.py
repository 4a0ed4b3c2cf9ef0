"""Figures drawn in forked worker processes are byte-identical to a serial render."""

from __future__ import annotations

import json
import multiprocessing as mp
import signal
from pathlib import Path

import pandas as pd
import pytest
from synthetic import build_compare_grid, build_result_dir

from backtest.atomic import terminate_as_exit
from reports import figures as F
from reports import render


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_parallel_render_is_byte_identical(tmp_path: Path) -> None:
    folder = build_result_dir(tmp_path / "r", compare=False, n_bars=1200)
    summary = json.loads((folder / "summary.json").read_text())
    ledger = pd.read_parquet(folder / "ledger.parquet")
    events = render.choose_events(summary, ledger)[0]
    jobs = render._figure_jobs(summary, ledger, events, build_compare_grid())
    serial = F.render_all(jobs, tmp_path / "serial", workers=1)
    parallel = F.render_all(jobs, tmp_path / "parallel", workers=2)
    assert list(parallel) == list(serial) == list(jobs)  # report order kept
    for stem in jobs:
        assert parallel[stem].read_bytes() == serial[stem].read_bytes(), stem
    assert F._PENDING == {}  # nothing left behind for later forks


def _blank(path: Path) -> Path:
    """A figure of a few colours (an empty axes): matplotlib's PDF writer makes it a palette image."""
    fig = F.new_figure()
    fig.add_subplot()
    return F._finish(fig, path)  # type: ignore[return-value]


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_each_figure_reports_whether_it_has_at_most_256_colours(tmp_path: Path) -> None:
    """The flag the PDF relies on to embed a PNG undecoded (reports.pdf._PngPassThrough) is the
    PNG's own colour count, drawn here or in a worker, and is not kept once handed over."""
    from PIL import Image

    folder = build_result_dir(tmp_path / "r", compare=False, n_bars=400)
    summary = json.loads((folder / "summary.json").read_text())
    ledger = pd.read_parquet(folder / "ledger.parquet")
    every = render._figure_jobs(summary, ledger, render.choose_events(summary, ledger)[0], None)
    jobs = {stem: every[stem] for stem in ("equity", "index_weights", "drawdowns") if stem in every}
    jobs["blank"] = (_blank, (), {})
    func, args, kwargs = jobs["equity"]
    func(*args, tmp_path / "outside.png", **kwargs)  # a figure saved outside a report records nothing
    assert F._COLOURS.few is None
    for workers in (1, 2):
        with F.start_all(jobs, tmp_path / f"w{workers}", workers=workers) as pending:
            flags = {stem: pending.few_colours(stem) for stem in jobs}
            labelled = pending.relabelled({stem: stem.upper() for stem in jobs})
            assert {k: labelled.few_colours(k) for k in labelled} == {s.upper(): f for s, f in flags.items()}
            for stem in jobs:
                with Image.open(pending[stem]) as img:
                    if img.mode == "RGB":
                        assert flags[stem] is (img.getcolors(256) is not None), stem
                    else:
                        assert flags[stem] is None, stem  # not drawn through the RGB route: not known
        assert flags["equity"] is False and flags["blank"] is True, flags
        assert F._COLOURS.few is None  # recorded only while a job draws


def _write_sigterm_handler(path: Path) -> Path:
    path.write_text(str(signal.getsignal(signal.SIGTERM)), encoding="utf-8")
    return path


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_render_workers_die_on_sigterm_even_under_the_clis_handler(tmp_path: Path) -> None:
    """Pool.terminate stops workers with SIGTERM and waits: they must not inherit the CLI's handler."""
    jobs = {f"w{i}": (_write_sigterm_handler, (), {}) for i in range(4)}
    with terminate_as_exit():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        out = F.render_all(jobs, tmp_path, workers=2)
    assert {p.read_text(encoding="utf-8") for p in out.values()} == {str(signal.SIG_DFL)}


def _draw_slowly(path: Path) -> Path:
    import time

    time.sleep(0.3)
    path.write_bytes(b"png")
    return path


def _die(path: Path) -> Path:
    import os

    os.kill(os.getpid(), signal.SIGKILL)
    return path


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_figures_draw_while_the_caller_works_and_are_read_in_order(tmp_path: Path) -> None:
    """start_all returns at once; reading a path waits for that figure; progress hears each
    figure once, counting up to the total, from the caller's thread."""
    import threading
    import time

    ticks: list[tuple[str, int, int, int]] = []
    jobs = {f"f{i}": (_draw_slowly, (), {}) for i in range(4)}
    t0 = time.perf_counter()
    with F.start_all(jobs, tmp_path, workers=2,
                     progress=lambda step, done, total: ticks.append((step, done, total, threading.get_ident()))) as pending:
        assert time.perf_counter() - t0 < 0.25  # nothing waited for yet
        assert list(pending) == list(jobs) and len(pending) == 4
        assert pending["f2"].read_bytes() == b"png"
        labelled = pending.relabelled({stem: stem.upper() for stem in jobs})
        assert [labelled[k].name for k in labelled] == ["f0.png", "f1.png", "f2.png", "f3.png"]
    assert [(s, d, t) for s, d, t, _ in ticks] == [("figures", i, 4) for i in range(1, 5)]
    assert {tid for *_, tid in ticks} == {threading.get_ident()}
    assert F._PENDING == {}


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_a_killed_figure_worker_is_an_output_error_not_a_hang(tmp_path: Path, monkeypatch) -> None:
    from backtest.errors import OutputError

    monkeypatch.setattr(F, "FIGURE_TIMEOUT_S", 3.0)
    with pytest.raises(OutputError, match=r"figure 'gone' not drawn within 3 s"):
        with F.start_all({"gone": (_die, (), {}), "ok": (_draw_slowly, (), {})}, tmp_path, workers=2) as pending:
            pending.wait_all()
    assert F._PENDING == {}


def test_default_workers_is_bounded() -> None:
    assert 1 <= F.default_workers() <= 4


_ORPHAN_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from reports import figures as F

def slow(path):
    time.sleep(1.0)
    path.write_bytes(b"png")
    return path

with F.start_all({"a": (slow, (), {}), "b": (slow, (), {})}, Path(sys.argv[1]), workers=2):
    print("started", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_workers_of_a_killed_command_leave_without_a_traceback(tmp_path: Path) -> None:
    """SIGKILL to the command: its figure workers, mid-figure, end silently once it is drawn
    (they used to print a BrokenPipeError traceback into the terminal after the command died)."""
    import subprocess
    import sys
    import time

    script = tmp_path / "command.py"
    script.write_text(_ORPHAN_SCRIPT, encoding="utf-8")
    root = str(Path(__file__).resolve().parents[2])
    with subprocess.Popen([sys.executable, str(script), str(tmp_path / "figs"), root],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.3)  # the workers are drawing
        proc.kill()
        proc.wait()
        started = time.monotonic()
        err = proc.stderr.read()  # end of file once the workers, which share this pipe, have left
    assert time.monotonic() - started < 30
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
