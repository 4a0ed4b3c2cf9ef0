"""The benchmark table names the script that measured each row (``make bench`` -> ``results.md``)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench() -> Iterator[dict[str, ModuleType]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import common
        import run_all

        yield {"common": common, "run_all": run_all}
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_every_row_of_make_bench_names_the_script_that_measured_it(
    bench: dict[str, ModuleType], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common, run_all = bench["common"], bench["run_all"]
    modules = ("scaling", "single_run", "stress", "sweep", "memory")
    for name in modules:  # each benchmark returns one row of its own, instantly
        monkeypatch.setattr(getattr(run_all, name), "main", lambda name=name: [common.Row(name, "m", "1 s")])
    monkeypatch.setattr(common, "machine_info", lambda: {"date": "today", "cores": "2"})
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(common, "ROOT", tmp_path)  # the files are printed relative to it
    assert run_all.main() == 0

    with (tmp_path / "results" / "results.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["benchmark"] for r in rows] == list(modules)
    for r in rows:
        command = r["command"]
        assert command == f".venv/bin/python benchmarks/{r['benchmark']}.py"
        assert (ROOT / command.split()[-1]).is_file()
    md = (tmp_path / "results" / "results.md").read_text(encoding="utf-8").splitlines()
    assert "| benchmark | metric | hedgebt | baseline | ratio | target | status | command |" in md
    assert "| sweep | m | 1 s |  |  |  |  | `.venv/bin/python benchmarks/sweep.py` |" in md
