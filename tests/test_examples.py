"""The README's API example and the scripts of examples/ run as written (and print what the README quotes)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_api_tour_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "tour"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["api_tour.py", str(out)])
    namespace = runpy.run_path(str(ROOT / "examples" / "api_tour.py"), run_name="__main__")
    res = namespace["res"]
    assert {"summary.json", "ledger.parquet", "metrics.csv", "events.csv", "report.pdf"} <= {p.name for p in out.iterdir()}
    assert list(res.metrics["rule"]) == res.rules
    assert namespace["fig"].axes and namespace["margin"].axes


def test_multi_instrument_example_prints_the_readme_figures(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "examples" / "multi_instrument_fet.py"), run_name="__main__")
    figures = {line.rsplit(" ", 1)[0].split()[0] + " " + ("in" if "in-sample" in line else "out"): float(line.rsplit(" ", 1)[1])
               for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert figures == {"index in": 0.4222, "BTC in": 0.3088, "index+BTC in": 0.4313,
                       "index out": 0.4355, "index+BTC out": 0.4477}
    # nested least squares: both instruments together explain at least as much as either alone
    assert figures["index+BTC in"] >= max(figures["index in"], figures["BTC in"])
