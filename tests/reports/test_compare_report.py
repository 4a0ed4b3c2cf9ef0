"""The compare report: figures and PDF from a compare folder, deterministic, with the ranking in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from backtest.cli import main
from conftest import SYNTHETIC_SCENARIO, write_synthetic_prices

GRID = """
[compare]
rank_by = "hedge_effectiveness"
[[compare.rules]]
family = "notional"
fraction = [0.5, 1.0]
[[compare.rules]]
family = "ewma"
halflife = [24.0, 72.0]
[[compare.rebalance]]
mode = "every"
every_bars = [1, 24]
"""

BASE = SYNTHETIC_SCENARIO


@pytest.fixture
def compare_config(tmp_path: Path) -> Path:
    write_synthetic_prices(tmp_path / "prices.parquet", n_days=40)
    path = tmp_path / "grid.toml"
    path.write_text(BASE + GRID, encoding="utf-8")
    return path


def test_compare_writes_tables_figures_and_pdf(compare_config: Path, tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "cmp"
    assert main(["compare", str(compare_config), "--out", str(out), "--scheduler", "none"]) == 0
    table = pd.read_parquet(out / "compare.parquet")
    assert len(table) == 4 * 2
    assert (out / "compare.csv").read_text().count("\n") == len(table) + 1
    info = json.loads((out / "compare.json").read_text())
    assert info["variants"] == 8 and info["rank_by"] == "hedge_effectiveness"
    for png in ("compare_scatter.png", "compare_table.png"):
        assert (out / "figures" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "\n".join(p.extract_text() for p in PdfReader(out / "compare.pdf").pages)
    best = table.sort_values("rank").iloc[0]
    assert best["variant"][:40] in text
    assert f"{100 * best['hedge_effectiveness']:.1f} %" in text
    oracle = float(table["oracle_r2"].iloc[0])
    assert f"oracle rho^2 = {oracle:.3f}" in text


def test_compare_outputs_are_byte_identical(compare_config: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["compare", str(compare_config), "--out", str(tmp_path / name), "--scheduler", "none"]) == 0
    for f in ("compare.csv", "compare.pdf", "figures/compare_scatter.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
