"""The README's API example and examples/api_tour.py run as written."""

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
