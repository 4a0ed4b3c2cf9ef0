"""Margin stress: bootstrap indices, monotone curves, identity path = history, CLI outputs."""

from __future__ import annotations

import json
import re

from pathlib import Path

import numpy as np
import pytest
from arch.bootstrap import StationaryBootstrap

from backtest import kernels as K
from backtest.cli import main
from backtest.engine import prepare
from backtest.errors import ConfigError
from backtest.results import run
from backtest.margin_stress import StressSpec, draw_indices, run_stress, simulate_paths

from conftest import synthetic_config, write_synthetic_prices
from records import assert_result_record

MARGIN = {"collateral_usd": 2_000.0, "reserve_usd": 1_000_000.0, "initial_rate": 0.05, "maintenance_rate": 0.02}


@pytest.fixture
def config(tmp_path: Path):
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=60)
    return synthetic_config(prices, margin=MARGIN)


def test_indices_equal_arch_stationary_bootstrap_on_the_same_seed() -> None:
    got = draw_indices(500, 120, 4, 7.5, seed=42)
    bs = StationaryBootstrap(7.5, np.arange(500), seed=42)
    want = []
    for _ in bs.bootstrap(4):
        want.append(np.asarray(bs.index)[:120])
    np.testing.assert_array_equal(got, np.array(want))
    assert got.min() >= 0 and got.max() < 500
    with pytest.raises(ConfigError, match="--horizon-days"):
        draw_indices(10, 11, 1, 2.0, seed=0)


def test_identity_path_reproduces_the_historical_replay(config) -> None:
    """One "path" equal to history (all bars, rows in order) gives the run's margin calls and P&L."""
    p = prepare(config)
    T = p.market.n_bars
    summ, hrs = simulate_paths(config, p, np.arange(T - 1)[None, :], (config.margin.collateral_usd,))
    np.testing.assert_allclose(hrs[0], p.market.hr, rtol=1e-9, atol=1e-12)
    hist = run(config, prepared=p).summary["rules"]
    calls = [hist[label]["margin_calls"] for label in p.rule_labels]
    assert sum(calls) > 0  # the scenario does have margin calls
    for r, label in enumerate(p.rule_labels):
        s = summ[0, r, 1]
        assert int(s[K.S_MARGIN_CALLS]) == hist[label]["margin_calls"]
        assert int(s[K.S_LIQUIDATIONS]) == hist[label]["liquidations"]
        assert s[K.S_PNL_FUTURES] == pytest.approx(hist[label]["pnl"]["futures"], rel=1e-9, abs=1e-6)


def test_curve_is_monotone_and_quantiles_agree_with_the_grid(config) -> None:
    spec = StressSpec(paths=60, horizon_days=10, seed=3)
    res = run_stress(config, spec)
    assert res.indices.shape == (60, 240)
    for label, t in res.table.groupby("rule"):
        t = t.sort_values("collateral_usd")
        assert (np.diff(t["p_margin_call"].to_numpy()) <= 0).all(), label
        assert (np.diff(t["p_liquidation"].to_numpy()) <= 0).all(), label
        assert t["p_margin_call"].iloc[0] > 0.5 and t["p_margin_call"].iloc[-1] == 0.0
    # the survival quantile of per-path needs, replayed with margin on at that collateral
    r0 = res.info["rules"][next(iter(res.info["rules"]))]
    assert r0["collateral_95_usd"] <= r0["collateral_99_usd"]
    at99 = run_stress(config, StressSpec(paths=60, horizon_days=10, seed=3, collateral_usd=(r0["collateral_99_usd"],)))
    assert at99.table["p_margin_call"].iloc[0] <= 0.01
    np.testing.assert_array_equal(at99.indices, res.indices)


def test_stress_cli_writes_reproducible_outputs(config, tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[scenario]\nstart = "2024-01-01"\n[data]\nprices = "prices.parquet"\nohlc = ""\n'
        '[position]\ncoins = ["COIN"]\nunits = [100000]\n'
        '[index]\nconstituents = ["AAA", "BBB", "CCC", "DDD"]\nmin_history_days = 3\nmax_weight = 0.4\n'
        '[margin]\ncollateral_usd = 2000\nreserve_usd = 1000000\n[rebalance]\nwhole_contracts = false\n',
        encoding="utf-8")
    args = ["stress", str(toml), "--paths", "20", "--horizon-days", "5", "--seed", "9"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    for name in ("stress.csv", "stress.json", "stress.png", "stress_needs.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    record = json.loads((tmp_path / "a" / "stress.json").read_text(encoding="utf-8"))
    assert_result_record(record, {"prices": tmp_path / "prices.parquet"}, events=False)
    assert main([*args, "--out", str(tmp_path / "c"), "--collateral-grid", "1000,x"]) == 2
    assert main(["stress", str(toml), "--paths", "0", "--horizon-days", "5", "--out", str(tmp_path / "d")]) == 2
    assert main(["stress", str(toml), "--paths", "2", "--horizon-days", "500", "--out", str(tmp_path / "e")]) == 2


def test_dask_processes_give_the_same_curve(config) -> None:
    spec = StressSpec(paths=6, horizon_days=3, seed=1, collateral_usd=(0.0, 2_000.0, 20_000.0))
    p = prepare(config)
    local = run_stress(config, spec, prepared=p)
    dask = run_stress(config, spec, prepared=p, scheduler="processes")
    np.testing.assert_array_equal(local.needs, dask.needs)
    assert local.table.equals(dask.table)
    with pytest.raises(ConfigError, match="--scheduler"):
        run_stress(config, spec, prepared=p, scheduler="threads")


@pytest.mark.parametrize("futures", [{"kind": "quarterly"}, {"kind": "perpetual"}], ids=["dated", "perpetual"])
def test_one_pass_kernel_equals_the_per_path_loop_bit_for_bit(tmp_path: Path, futures: dict) -> None:
    """``simulate_paths_nb`` over stacked paths gives each path's ``simulate_many_nb`` summaries exactly,
    for every rule x (margin off, several collateral levels with margin on)."""
    from backtest.market import pack_variants
    from backtest.margin_stress import _variants, joint_moves, path_market, stack_markets

    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=60)
    cfg = synthetic_config(prices, margin=MARGIN, futures={**futures, "contract_size": 1.0},
                           funding={"source": "constant", "rate_per_interval": 0.0003})
    p = prepare(cfg)
    moves = joint_moves(p)
    idx = draw_indices(len(moves), 10 * 24, 5, 12.0, seed=4)
    markets = [path_market(cfg, p, rows, moves) for rows in idx]
    grid = tuple(float(c) for c in np.linspace(0.0, 8_000.0, 20))  # 2 rules x 21 variants: two groups per path
    fps, ips = pack_variants(_variants(cfg, len(p.rules), grid))
    assert fps.shape[0] > K._GROUP  # more than one variant group per path
    loop = np.stack([K.simulate_many_nb(*mk.kernel_args(), fps, ips) for mk in markets])
    args = stack_markets(markets)
    one = K.simulate_paths_nb(*args, fps, ips)
    assert one.shape == (5, fps.shape[0], K.N_SUM)
    np.testing.assert_array_equal(one, loop)
    s = loop.reshape(5, len(p.rules), 1 + len(grid), K.N_SUM)
    assert s[:, :, 1, K.S_MARGIN_CALLS].sum() > 0  # margin calls do happen at zero collateral
    if futures["kind"] == "perpetual":
        assert np.abs(s[..., K.S_FUNDING]).max() > 0
    else:
        assert s[..., K.S_ROLLS].max() > 0 or s[..., K.S_TRADES].max() > 0
    # the calendar is the same for every path (what lets the kernel share it)
    for mk in markets[1:]:
        for name in ("c0", "c1", "w1", "exp_bar", "fund_rate", "volume_usd", "vm_bar", "idx_lo"):
            np.testing.assert_array_equal(getattr(mk, name), getattr(markets[0], name))
    # batch size and scheduler change nothing
    a, _ = simulate_paths(cfg, p, idx, grid, moves, batch=2)
    b, _ = simulate_paths(cfg, p, idx, grid, moves, batch=64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a.reshape(loop.shape), loop)


@pytest.mark.parametrize(("extra", "says"), [
    (["--seed", "-1"], "option '--seed': expected an integer >= 0, got -1"),
    (["--paths", "2000000"], "option '--paths': expected an integer from 1 to 1,000,000"),
    (["--paths", "1000000"], "option '--paths': 1,000,000 paths of 121 bars are 121,000,000 bars; at most 100,000,000"),
    (["--horizon-days", "0.01"], "option '--horizon-days': expected at least one bar (0.04167 days), got 0.01"),
    (["--collateral-grid", "1e300,1"], "option '--collateral-grid': expected USD amounts from 0 to 1e+15"),
    (["--collateral-grid", "1000,1000"], "option '--collateral-grid': expected distinct USD amounts"),
    (["--collateral-grid", ""], "option '--collateral-grid': expected comma-separated USD amounts, got ''"),
])
def test_stress_refuses_what_it_cannot_honour_in_one_line(tmp_path: Path, capsys, extra: list, says: str) -> None:
    """A negative seed, more paths than memory allows, a horizon under one bar, a collateral above
    the config's bound or listed twice, an empty grid: one line, exit 2, nothing written (these
    were tracebacks, or ran: one bar per path, duplicate rows, the default grid in silence)."""
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=60)
    toml = tmp_path / "s.toml"
    toml.write_text(
        '[scenario]\nstart = "2024-01-01"\n[data]\nprices = "prices.parquet"\nohlc = ""\n'
        '[position]\ncoins = ["COIN"]\nunits = [100000]\n'
        '[index]\nconstituents = ["AAA", "BBB", "CCC", "DDD"]\nmin_history_days = 3\nmax_weight = 0.4\n',
        encoding="utf-8")
    assert prices.exists()
    args = {"--paths": "5", "--horizon-days": "5"}
    args.update(dict(zip(extra[::2], extra[1::2])))
    out = tmp_path / "out"
    assert main(["stress", str(toml), *[x for kv in args.items() for x in kv], "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"paths": 1.5}, "'--paths': expected an integer"),
    ({"paths": True}, "'--paths': expected an integer"),
    ({"seed": None}, "'--seed': expected an integer >= 0, got None"),
    ({"horizon_days": "10"}, "'--horizon-days': expected a number, got '10'"),
    ({"block_bars": "5"}, "'--block-bars': expected a number, got '5'"),
    ({"collateral_usd": ["a"]}, "'--collateral-grid': expected USD amounts"),
])
def test_stress_arguments_of_the_wrong_type_are_config_errors(kwargs: dict, says: str) -> None:
    """Checked before any data is read (they were TypeErrors from deep in the path bootstrap)."""
    args = {"paths": 5, "horizon_days": 5.0, **kwargs}
    with pytest.raises(ConfigError, match=re.escape(says)):
        StressSpec(**args)


def test_stress_refuses_a_collateral_grid_given_as_a_string() -> None:
    from backtest.api import stress

    with pytest.raises(ConfigError, match="'collateral_usd': expected a list, got '100000'"):  # was read as 1, 0, 0, ...
        stress("demo.toml", paths=5, horizon_days=5.0, collateral_usd="100000")
