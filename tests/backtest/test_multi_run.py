"""multi_min_variance replays: isolated-margin legs of the unchanged kernel, combined once per coin."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest import kernels as K
from backtest.cli import main
from backtest.config import RuleSpec
from backtest.engine import prepare, variant_for
from backtest.errors import ConfigError
from backtest.market import run_variant
from backtest.multi_run import MARGIN_MODEL, run_multi
from backtest.results import run
from conftest import SYNTHETIC_SCENARIO, synthetic_config, write_synthetic_prices

MULTI = {"family": "multi_min_variance", "instruments": ["index", "AAA"], "window": 120}
FLOWS = ("pnl_futures", "fees", "slippage", "roll_cost", "funding", "liquidation_cost")


@pytest.fixture
def prices(tmp_path: Path) -> Path:
    return write_synthetic_prices(tmp_path / "prices.parquet", n_days=40)


def _config(prices: Path, *rules: dict, **sections: dict):
    return synthetic_config(prices, rules=list(rules), **sections)


def test_combined_account_is_the_coin_once_plus_every_leg(prices: Path) -> None:
    cfg = _config(prices, {**MULTI, "collateral_split": [0.3, 0.7]}, margin={"enabled": True})
    p = prepare(cfg)
    out = run_multi(cfg, p, p.rules[0])
    rows, legs = out.rows, out.leg_rows
    spot = np.cumsum(p.market.alt_flow)
    accounts = sum((r["cash"] - spot) + r["fut_unrealized"] for r in legs)
    np.testing.assert_allclose(rows["equity_hedged"], p.market.alt_value + spot + accounts, rtol=0, atol=1e-6)
    # each bar's change is the coin's P&L once plus every leg's futures flows
    flows = sum(r[name] for r in legs for name in FLOWS)
    np.testing.assert_allclose(np.diff(rows["equity_hedged"]), p.market.alt_pnl[1:] + flows[1:], rtol=0, atol=1e-6)
    assert abs(out.weights[:, 1]).max() > 0  # the second leg trades
    # the summary: total P&L = coin + each leg's parts; counts summed over legs
    result = run(cfg)
    m = result.summary["rules"][p.rule_labels[0]]
    leg_totals = sum(leg["pnl"]["total"] for leg in m["legs"].values())
    assert m["pnl"]["total"] == pytest.approx(m["pnl"]["altcoin"] + leg_totals, abs=1e-6)
    assert m["pnl"]["total"] == pytest.approx(out.summary["final_equity_hedged"] - rows["equity_unhedged"][0], abs=1e-6)
    assert m["trades"] == sum(leg["trades"] for leg in m["legs"].values())
    assert m["min_safe_collateral"] == sum(leg["min_safe_collateral"] for leg in m["legs"].values())
    assert [m["legs"][u]["collateral_usd"] for u in ("index", "AAA")] == pytest.approx([15_000.0, 35_000.0])
    assert m["margin_model"] == MARGIN_MODEL and MARGIN_MODEL in result.summary["scenario"]["description"]


def test_weights_h_and_zero_with_all_collateral_on_leg_one_is_the_single_instrument_run(prices: Path) -> None:
    cfg = _config(prices, {**MULTI, "collateral_split": [1.0, 0.0]}, margin={"enabled": True, "collateral_usd": 3_000.0})
    p = prepare(cfg)
    T = p.market.n_bars
    h = 0.6 + 0.5 * np.sin(np.arange(T) / 50.0)  # a planted hedge-ratio series
    out = run_multi(cfg, p, p.rules[0], weights=np.column_stack([h, np.zeros(T)]))
    single, summ = run_variant(replace(p.market, hr=h[:, None]), variant_for(cfg, 0))
    for name in K.OUT:
        np.testing.assert_allclose(out.rows[name], single[name], rtol=0, atol=1e-9, err_msg=name)
    assert out.summary["margin_calls"] == summ["margin_calls"] > 0  # margin binds: the comparison means something
    for name in (*FLOWS, "pnl_basis", "margin_balance", "margin_initial", "contracts", "trade_contracts"):
        assert not out.leg_rows[1][name].any(), name  # the zero leg never moves


def test_constant_warmup_weights_through_run_equal_the_fixed_rule(prices: Path) -> None:
    # a window longer than the replay: the weights stay at the warm-up (0.8, 0) throughout
    multi = {**MULTI, "window": 5000, "warmup": [0.8, 0.0], "collateral_split": [1.0, 0.0], "label": "multi"}
    cfg = _config(prices, {"family": "fixed", "ratio": 0.8, "label": "fixed"}, multi,
                  margin={"enabled": True, "collateral_usd": 3_000.0})
    result = run(cfg)
    ledger = result.ledger
    a = ledger[ledger["rule"] == "fixed"].drop(columns="rule").reset_index(drop=True)
    b = ledger[ledger["rule"] == "multi"].drop(columns="rule").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=0, atol=1e-9)
    fixed, mv = result.summary["rules"]["fixed"], result.summary["rules"]["multi"]
    for key in ("hedge_effectiveness", "margin_calls", "min_safe_collateral", "cost_trading_usd", "carry_usd"):
        assert mv[key] == pytest.approx(fixed[key], rel=1e-9, abs=1e-9), key
    assert mv["he_by_horizon"]["1D"] == pytest.approx(fixed["he_by_horizon"]["1D"], rel=1e-9)


def test_each_leg_is_the_kernel_run_of_its_own_market_ratio_and_collateral(prices: Path) -> None:
    cfg = _config(prices, {**MULTI, "collateral_split": [0.25, 0.75]}, margin={"enabled": True})
    p = prepare(cfg)
    out = run_multi(cfg, p, p.rules[0])
    for i, u in enumerate(("index", "AAA")):
        # an independent preparation of futures on u, as a single-instrument config on the run's bars has it
        # (AAA alone would start a week earlier: the index needs min_history_days first)
        window = replace(cfg.scenario, start=p.ts[0].isoformat(), end=p.ts[-1].isoformat())
        alone = prepare(replace(cfg, scenario=window, futures=replace(cfg.futures, underlying=u), rules=(RuleSpec("none"),)))
        assert alone.ts.equals(p.ts)
        variant = replace(variant_for(cfg, 0), collateral_usd=[0.25, 0.75][i] * 50_000.0,
                          reserve_usd=[0.25, 0.75][i] * 100_000.0)
        rows, summ = run_variant(replace(alone.market, hr=out.weights[:, i : i + 1]), variant)
        for name in K.OUT:
            np.testing.assert_array_equal(out.leg_rows[i][name], rows[name], err_msg=f"{u}: {name}")
        assert out.leg_summaries[i]["margin_calls"] == summ["margin_calls"]


def test_no_look_ahead_weights_and_contracts_ignore_later_prices(prices: Path, tmp_path: Path) -> None:
    cfg = _config(prices, MULTI)
    base = run_multi(cfg, p := prepare(cfg), p.rules[0])
    t = 500
    cut = p.ts[t] + pd.Timedelta(hours=1)  # bars after t (ts are bar opens; closes one hour later)
    raw = pd.read_parquet(prices)
    later = raw["ts"] >= cut
    shock = np.random.default_rng(3).lognormal(0, 0.05, later.sum())
    raw.loc[later, "close"] = raw.loc[later, "close"] * shock
    other = tmp_path / "other"
    other.mkdir()
    raw.to_parquet(other / "prices.parquet", index=False)
    cfg2 = _config(other / "prices.parquet", MULTI)
    changed = run_multi(cfg2, p2 := prepare(cfg2), p2.rules[0])
    assert not np.array_equal(changed.weights[t + 30 :], base.weights[t + 30 :])  # the change mattered later
    np.testing.assert_array_equal(changed.weights[: t + 1], base.weights[: t + 1])
    for i in range(2):
        np.testing.assert_array_equal(changed.leg_rows[i]["contracts"][: t + 1], base.leg_rows[i]["contracts"][: t + 1])


def _write(tmp_path: Path, rules: str) -> Path:
    write_synthetic_prices(tmp_path / "prices.parquet", n_days=40)
    path = tmp_path / "multi.toml"
    path.write_text(SYNTHETIC_SCENARIO + '[rebalance]\nevery_bars = 24\n' + rules, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("params", "key", "fragment"),
    [
        ('instruments = ["index", "ZZZ"]', "rules[1].instruments", "unknown symbol 'ZZZ'"),
        ('instruments = ["index"]', "rules[1].instruments", "at least 2"),
        ('instruments = ["AAA", "AAA"]', "rules[1].instruments", "distinct"),
        ('instruments = ["index", "AAA"]\ncollateral_split = [0.5, 0.4]', "rules[1].collateral_split", "summing to 1"),
        ('instruments = ["index", "AAA"]\ncollateral_split = [1.5, -0.5]', "rules[1].collateral_split", ">= 0"),
        ('instruments = ["index", "AAA"]\ncollateral_split = [1.0]', "rules[1].collateral_split", "one per instrument"),
        ("window = 120", "rules[1].instruments", "missing required parameter"),
    ],
)
def test_bad_multi_config_exits_2_naming_the_key(tmp_path: Path, capsys, params: str, key: str, fragment: str) -> None:
    path = _write(tmp_path, '[[rules]]\nfamily = "notional"\n[[rules]]\nfamily = "multi_min_variance"\nwindow = 120\n'
                  + params.replace("window = 120", "") + "\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"config key '{key}'" in err[0] and fragment in err[0], err


def test_compare_and_stress_refuse_the_family(tmp_path: Path, capsys) -> None:
    path = _write(tmp_path, '[[rules]]\nfamily = "multi_min_variance"\ninstruments = ["index", "AAA"]\nwindow = 120\n')
    assert main(["stress", str(path), "--paths", "2", "--horizon-days", "2", "--out", str(tmp_path / "s")]) == 2
    assert "'rules[0].family'" in capsys.readouterr().err
    text = path.read_text() + ('[compare]\n[[compare.rules]]\nfamily = "multi_min_variance"\n'
                               'instruments = ["index", "AAA"]\nwindow = [120]\n')
    path.write_text(text.replace('[[rules]]\nfamily = "multi_min_variance"\ninstruments = ["index", "AAA"]\nwindow = 120\n',
                                 '[[rules]]\nfamily = "notional"\n'), encoding="utf-8")
    assert main(["compare", str(path), "--out", str(tmp_path / "c"), "--no-report"]) == 2
    assert "'compare.rules[0].family'" in capsys.readouterr().err


def test_cli_run_and_report_with_a_single_and_a_multi_rule(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[rules]]\nfamily = "min_variance"\nwindow = 120\n'
                            '[[rules]]\nfamily = "multi_min_variance"\ninstruments = ["index", "AAA"]\nwindow = 120\n')
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    multi = summary["rules"]["multi_min_variance(index+AAA, window=120)"]
    assert set(multi["legs"]) == {"index", "AAA"} and multi["collateral_split"] == [0.5, 0.5]
    ledger = pd.read_parquet(out / "ledger.parquet")
    assert ledger.groupby("rule").size().nunique() == 1  # every rule on the same bars
    # legs.parquet: every leg's rows; the ledger's USD flows are their sums, contracts the first leg's
    legs = pd.read_parquet(out / "legs.parquet")
    rows = ledger[ledger["rule"] == "multi_min_variance(index+AAA, window=120)"].reset_index(drop=True)
    by_leg = {u: g.reset_index(drop=True) for u, g in legs.groupby("leg")}
    assert set(by_leg) == {"index", "AAA"} and len(by_leg["AAA"]) == len(rows)
    for name in ("pnl_futures", "fees", "margin_balance"):
        np.testing.assert_allclose(rows[name], by_leg["index"][name] + by_leg["AAA"][name], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(rows["contracts"], by_leg["index"]["contracts"])
    assert (by_leg["AAA"]["contracts"] != 0).any()
    assert (out / "report.pdf").stat().st_size > 0 and len(list((out / "figures").glob("*.png"))) > 3
    assert "multi_min_variance(index+AAA, window=120)" in (out / "metrics.csv").read_text()
    assert main(["report", str(out), "-q"]) == 0
    again = tmp_path / "again"
    assert main(["run", str(path), "--out", str(again), "-q", "--no-report"]) == 0
    for name in ("summary.json", "ledger.parquet", "legs.parquet"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name  # reproducible
