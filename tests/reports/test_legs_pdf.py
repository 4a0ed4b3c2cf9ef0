"""The run report's "Two-instrument legs" section and the executive summary of a two-instrument rule."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pypdf
import pytest
from conftest import SYNTHETIC_SCENARIO, write_synthetic_prices
from synthetic import build_result_dir

from backtest.cli import main
from reports.events import EVENT_COLUMNS
from reports.pdf import fmt_usd, leg_collateral_sum, leg_rows, recommend_rule, write_pdf
from reports.render import metrics_table, read_result

HEADER = "Two-instrument legs"
MULTI = "multi_min_variance(index+AAA, window=120)"


def _pdf_lines(path: Path) -> list[str]:
    reader = pypdf.PdfReader(path)
    return [ln for page in reader.pages for ln in page.extract_text().splitlines()]


def _flat(lines: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(lines))


@pytest.fixture(scope="module")
def multi_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run (CLI, synthetic prices) with a single-instrument and a two-instrument rule."""
    folder = tmp_path_factory.mktemp("legs")
    write_synthetic_prices(folder / "prices.parquet", n_days=40)
    config = folder / "multi.toml"
    config.write_text(SYNTHETIC_SCENARIO + '[rebalance]\nevery_bars = 24\n'
                      '[[rules]]\nfamily = "min_variance"\nwindow = 120\n'
                      '[[rules]]\nfamily = "multi_min_variance"\ninstruments = ["index", "AAA"]\nwindow = 120\n'
                      'collateral_split = [0.75, 0.25]\n', encoding="utf-8")
    assert main(["run", str(config), "--out", str(folder / "out"), "-q"]) == 0
    return folder / "out"


def test_real_run_pdf_has_one_row_per_leg_and_the_sum(multi_result: Path) -> None:
    summary = json.loads((multi_result / "summary.json").read_text())
    block = summary["rules"][MULTI]
    lines = _pdf_lines(multi_result / "report.pdf")
    assert lines.count(HEADER) == 1 and lines.count(MULTI) == 1
    start = lines.index(HEADER)
    for leg, share in (("index", "75.0 %"), ("AAA", "25.0 %")):
        safe = f"{block['legs'][leg]['min_safe_collateral']:,.0f}"
        rows = [ln for ln in lines[start:] if ln.split()[:3] == [leg, *share.split()]]
        assert len(rows) == 1, (leg, lines[start:])
        assert f" {safe} " in rows[0]
        assert f"{block['legs'][leg]['collateral_usd']:,.0f} + {block['legs'][leg]['reserve_usd']:,.0f}" in rows[0]
    text = _flat(lines[start:])
    # the rule's figure is the sum of the legs' (isolated accounts), stated with both terms
    assert block["min_safe_collateral"] > 0
    terms = " + ".join(f"{u} {block['legs'][u]['min_safe_collateral']:,.0f}" for u in ("index", "AAA"))
    assert f"{terms} = {fmt_usd(block['min_safe_collateral'])}." in text
    assert "summary.json gives" not in text
    assert f"Margin model: {block['margin_model']}." in text
    # the executive summary names both instruments of the two-instrument rule
    assert f"the two-instrument rule {MULTI} shorts futures on the index and AAA at once" in _flat(lines)


def _synthetic(tmp_path: Path, legs_on: str | None, **leg_over: Any) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """A synthetic summary (tests/reports/synthetic.py) and its metrics; ``legs_on`` (a rule of it)
    is given two legs whose figures ``leg_over`` (``index_<key>`` / ``AAA_<key>``) replaces."""
    summary, ledger, _ = read_result(build_result_dir(tmp_path / "r", n_bars=400, compare=False))
    summary = copy.deepcopy(summary)
    if legs_on is not None:
        block = summary["rules"][legs_on]
        legs = {u: {"collateral_usd": c, "reserve_usd": 10 * c, "mean_weight": w, "mean_hedge_ratio_held": w,
                    "cost_drag_bps_per_year": 12.5, "carry_usd": 321.0, "margin_calls": 2, "liquidations": 0,
                    "min_safe_collateral": s, "contracts_used": ["2025-03-28T08:00Z", "2025-06-27T08:00Z"]}
                for u, c, w, s in (("index", 60_000.0, 0.8, 41_000.0), ("AAA", 40_000.0, 0.2, 1_234.0))}
        for key, value in leg_over.items():
            leg, name = key.split("_", 1)
            legs[leg][name] = value
        block.update({"instruments": ["index", "AAA"], "collateral_split": [0.6, 0.4],
                      "margin_model": "isolated margin per leg (test)", "legs": legs,
                      "min_safe_collateral": 42_234.0})
    metrics = metrics_table(summary, ledger, n_boot=50)
    return summary, metrics, ledger


def _write(tmp_path: Path, summary: dict[str, Any], metrics: pd.DataFrame) -> list[str]:
    pdf = tmp_path / "report.pdf"
    write_pdf(pdf, summary, metrics, pd.DataFrame(columns=list(EVENT_COLUMNS)), [])
    return _pdf_lines(pdf)


def test_summary_without_legs_has_no_section(tmp_path: Path) -> None:
    summary, metrics, _ = _synthetic(tmp_path, None)
    text = _flat(_write(tmp_path, summary, metrics))
    assert "P&L and costs per rule" in text
    assert HEADER not in text and "two-instrument" not in text.lower() and "Margin model" not in text


def test_a_leg_figure_that_is_none_renders_na(tmp_path: Path) -> None:
    summary, metrics, _ = _synthetic(tmp_path, "static_ols", AAA_min_safe_collateral=None, AAA_carry_usd=None,
                                     index_contracts_used=["PERP"], AAA_contracts_used=None)
    lines = _write(tmp_path, summary, metrics)
    start = lines.index(HEADER)
    index_row = next(ln for ln in lines[start:] if ln.startswith("index "))
    aaa_row = next(ln for ln in lines[start:] if ln.startswith("AAA "))
    assert "41,000" in index_row and index_row.rstrip().endswith("PERP")
    assert aaa_row.split()[:3] == ["AAA", "40.0", "%"] and aaa_row.count("n/a") == 3  # carry, safe, contracts
    text = _flat(lines[start:])
    assert "index 41,000 + AAA n/a = n/a; summary.json gives 42,234 USD for the rule." in text


def test_recommended_two_instrument_rule_is_not_described_as_one_short(tmp_path: Path) -> None:
    summary, metrics, _ = _synthetic(tmp_path, None)
    rule, _ = recommend_rule(metrics)
    assert rule is not None
    summary, metrics, _ = _synthetic(tmp_path / "b", rule)
    text = _flat(_write(tmp_path, summary, metrics))
    assert (f"For the recommended rule {rule} (short futures on the index and AAA, one isolated margin account "
            "per leg):") in text
    assert "The hedge needed margin accounts of 42,234 USD in all (index 41,000 + AAA 1,234)" in text
    assert "The hedge needed a margin account of" not in text and "earned by the shorts" in text


def test_leg_rows_follow_the_instruments_and_a_differing_rule_figure_is_named() -> None:
    block = {"instruments": ["BTC", "index"], "collateral_split": [0.25, 0.75], "min_safe_collateral": 10.0,
             "legs": {"index": {"min_safe_collateral": 7.0, "contracts_used": ["2025-03-28T08:00Z"]},
                      "BTC": {"min_safe_collateral": float("nan"), "mean_weight": 0.31234}}}
    header, rows = leg_rows(block)
    assert len(header) == 10 and [r[0] for r in rows] == ["BTC", "index"]
    assert rows[0][:4] == ["BTC", "25.0 %", "n/a + n/a", "0.312"] and rows[0][8] == "n/a"
    assert rows[1][1] == "75.0 %" and rows[1][8] == "7" and rows[1][9] == "2025-03-28"
    assert leg_collateral_sum(block).endswith("BTC n/a + index 7 = n/a; summary.json gives 10 USD for the rule.")
    block["legs"]["BTC"]["min_safe_collateral"] = 2.0
    assert leg_collateral_sum(block).endswith("BTC 2 + index 7 = 9 USD; summary.json gives 10 USD for the rule.")
    block["min_safe_collateral"] = 9.0
    assert leg_collateral_sum(block).endswith("= 9 USD.")
