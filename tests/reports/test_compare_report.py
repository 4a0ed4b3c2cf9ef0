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


def test_single_underlying_has_no_instrument_section(compare_config: Path, tmp_path: Path) -> None:
    assert main(["compare", str(compare_config), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert not (tmp_path / "one" / "instruments.csv").exists()
    text = "\n".join(p.extract_text() for p in PdfReader(tmp_path / "one" / "compare.pdf").pages)
    assert "Which hedge instrument?" not in text


def test_instrument_section_equals_the_instruments_table(tmp_path: Path, monkeypatch) -> None:
    """With two underlyings the compare PDF has a "Which hedge instrument?" page whose table
    rows are instruments.csv's and whose verdict is instruments.json's; the page passes the
    layout check; ``hedgebt report`` re-renders the same bytes from the folder."""
    import re

    import pandas as pd
    from test_layout import record_pdf_pages

    from reports.pdf import fmt_pct, instrument_rows, instrument_verdict

    write_synthetic_prices(tmp_path / "prices.parquet", n_days=40,
                           symbols=("COIN", "AAA", "BBB", "CCC", "DDD", "BTC"))
    grid = GRID.replace('rank_by = "hedge_effectiveness"\n',
                        'rank_by = "hedge_effectiveness"\nunderlyings = ["index", "BTC"]\n')
    (tmp_path / "grid.toml").write_text(BASE + grid + '[events.mid_jan]\nstart = 2024-01-10\nend = 2024-01-20\n',
                                        encoding="utf-8")
    pages = record_pdf_pages(monkeypatch)
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "grid.toml"), "--out", str(out), "--quiet"]) == 0
    inst = pd.read_csv(out / "instruments.csv")
    verdicts = json.loads((out / "instruments.json").read_text())
    assert sorted(inst["underlying"]) == ["BTC", "index"] and len(verdicts) == 1
    section = [(text, problems) for text, problems in pages if "Which hedge instrument?" in text]
    assert len(section) == 1 and section[0][1] == []
    text = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(out / "compare.pdf").pages))
    assert "Which hedge instrument?" in text
    _, rows = instrument_rows(inst)
    for row, (_, r) in zip(rows, inst.iterrows(), strict=True):
        assert " ".join(" ".join(row).split()) in text  # the whole row, as printed
        assert row[0] == r["underlying"] and row[3] == fmt_pct(r["he_daily"]) and row[2] == fmt_pct(r["oracle_r2"])
        assert row[4] == f"{fmt_pct(r['he_daily_lo'])} .. {fmt_pct(r['he_daily_hi'])}"
        assert row[7] == f"{r['min_safe_collateral']:,.0f}" and row[6] == f"{r['carry_usd']:+,.0f}"
        assert row[10] == f"{r['worst_day']} {r['worst_day_pnl_hedged']:+,.0f} / {r['worst_day_pnl_unhedged']:+,.0f}"
        assert r["worst_day_pnl_hedged"] <= 0.0
        # 2024-01-01..2024-02-10: of the events only the config's mid_jan lies inside the days
        assert r["worst_event"] == "mid_jan" and row[11] == f"mid_jan {r['worst_event_pnl_hedged']:+,.0f}"
    v = verdicts[0]
    assert re.sub(r"\s+", " ", instrument_verdict(v)) in text
    assert v["best"] == inst.sort_values("he_daily", ascending=False)["underlying"].iloc[0]
    # a re-render from the folder (CompareResult.load reads instruments.csv / .json) gives the same PDF
    before = (out / "compare.pdf").read_bytes()
    assert main(["report", str(out), "--quiet"]) == 0
    assert (out / "compare.pdf").read_bytes() == before
    # a folder written before the worst-event columns re-renders, with n/a in their place
    inst.drop(columns=[c for c in inst.columns if c.startswith("worst_event")]).to_csv(out / "instruments.csv", index=False)
    assert main(["report", str(out), "--quiet"]) == 0
    old = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(out / "compare.pdf").pages))
    for row in instrument_rows(pd.read_csv(out / "instruments.csv"))[1]:
        assert row[11] == "n/a" and " ".join(" ".join(row).split()) in old


def test_worst_event_cell_reads_none_and_n_a() -> None:
    """The worst-event cell: name and hedged P&L; "none" when no event lay inside the data (an
    empty name, NaN once read back from the CSV); "n/a" when the column is absent (older folder)."""
    import pandas as pd

    from reports.pdf import _worst_event

    row = {"worst_event": "deepseek_2025", "worst_event_pnl_hedged": -81234.4}
    assert _worst_event(pd.Series(row)) == "deepseek_2025 -81,234"
    assert _worst_event(pd.Series({**row, "worst_event": ""})) == "none"
    assert _worst_event(pd.Series({**row, "worst_event": float("nan")})) == "none"
    assert _worst_event(pd.Series({"worst_day": "2024-01-02"})) == "n/a"
