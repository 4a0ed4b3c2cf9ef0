"""Rule comparison grid: expansion, ranking, determinism, and Dask == local."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.errors import ConfigError
from backtest.grid import parse_compare, run_compare

from conftest import synthetic_config, write_synthetic_prices

GRID = {
    "rank_by": "hedge_effectiveness",
    "rules": [
        {"family": "none"},
        {"family": "notional", "fraction": [0.5, 1.0]},
        {"family": "min_variance", "window": [48, 120]},
        {"family": "ewma", "halflife": [24.0]},
    ],
    "rebalance": [
        {"mode": "every", "every_bars": [1, 24]},
        {"mode": "band", "band": [0.1]},
    ],
}


@pytest.fixture
def grid_config(tmp_path: Path):
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=40)
    return synthetic_config(prices, compare=GRID)


def test_grid_expands_to_the_product(grid_config) -> None:
    spec = parse_compare(grid_config)
    assert len(spec.rules) == 1 + 2 + 2 + 1
    assert len(spec.rebalances) == 3
    table = run_compare(grid_config)
    assert len(table) == 6 * 3
    assert sorted(table["rank"]) == list(range(1, 19))
    assert set(table["family"]) == {"none", "notional", "min_variance", "ewma"}
    best = table.iloc[0]
    assert best["hedge_effectiveness"] == table["hedge_effectiveness"].max()
    none = table[table["family"] == "none"]
    assert (none["hedge_effectiveness"].abs() < 1e-12).all() and (none["trades"] == 0).all()


def test_grid_rows_equal_single_runs(grid_config) -> None:
    """A grid row is the same replay as `run` with that rule and policy."""
    from dataclasses import replace

    from backtest.config import RuleSpec
    from backtest.results import run

    table = run_compare(grid_config)
    row = table[(table["rule"] == "min_variance(window=120)") & (table["rebalance"].str.startswith("every 24"))].iloc[0]
    single = run(replace(grid_config, rules=(RuleSpec("min_variance", (("window", 120),)),),
                         rebalance=replace(grid_config.rebalance, mode="every", every_bars=24)))
    m = single.summary["rules"]["min_variance(window=120)"]
    for key in ("hedge_effectiveness", "vol_hedged_ann", "cost_drag_bps_per_year", "trades", "rolls"):
        assert row[key] == pytest.approx(m[key], rel=1e-12), key


def test_bad_grid_keys_are_refused(grid_config) -> None:
    from dataclasses import replace

    with pytest.raises(ConfigError, match="compare.rules\\[0\\].window"):
        parse_compare(replace(grid_config, compare={"rules": [{"family": "min_variance", "window": [0]}]}))
    with pytest.raises(ConfigError, match="compare.rebalance\\[0\\].bnd"):
        parse_compare(replace(grid_config, compare={"rules": [{"family": "none"}], "rebalance": [{"bnd": 0.1}]}))
    with pytest.raises(ConfigError, match="compare.rank_by"):
        parse_compare(replace(grid_config, compare={"rules": [{"family": "none"}], "rank_by": "luck"}))
    with pytest.raises(ConfigError, match="'compare.rebalance': expected at least one"):  # was a numpy traceback
        parse_compare(replace(grid_config, compare={"rules": [{"family": "none"}], "rebalance": []}))



def test_every_variant_has_its_own_name(grid_config) -> None:
    """Bands that differ below a whole percent get their own labels (2 % and 2.5 % used to print
    alike), a one-bar period is singular, and the variants of a grid have distinct names."""
    from dataclasses import replace

    cfg = replace(grid_config, compare={"rules": [{"family": "notional"}], "rebalance": [
        {"mode": "band", "band": [0.02, 0.025]}, {"mode": "every", "every_bars": [1, 24]},
        {"mode": "band_on_schedule", "every_bars": 8, "band": 0.125}]})
    table = run_compare(cfg)
    assert sorted(table["rebalance"]) == ["band 2%, fractional", "band 2.5%, fractional", "every 1 bar, fractional",
                                          "every 24 bars, fractional",
                                          "every 8 bars if drift > 12.5%, fractional"]
    assert table["variant"].is_unique


@pytest.mark.parametrize(("grid", "message"), [
    ({"rules": [{"family": "ewma", "halflife": [168, 168.0]}]},
     "compare.rules[0]': gives the rule 'ewma(halflife=168.0)' twice"),
    ({"rules": [{"family": "notional"}, {"family": "notional", "fraction": 1.0}]},
     "compare.rules[1]': gives the rule 'notional' that compare.rules[0] gives already"),
    ({"rules": [{"family": "none"}], "rebalance": [{"mode": "band", "band": [0.05, 0.05]}]},
     "compare.rebalance[0]': gives the rebalance policy 'band 5%, fractional' twice"),
    ({"rules": [{"family": "none"}], "rebalance": [{"mode": "every", "every_bars": 24, "band": 0.1},
                                                   {"mode": "every", "every_bars": 24, "band": 0.2}]},
     "compare.rebalance[1]': gives the rebalance policy 'every 24 bars, fractional' that compare.rebalance[0] gives"),
])
def test_a_variant_listed_twice_is_refused_naming_its_key(grid_config, grid: dict, message: str) -> None:
    """Two entries that make the same variant (the same rule, or policies that trade alike: a band
    is not used by mode "every") would give two rows of one name: refused, naming the key."""
    from dataclasses import replace

    with pytest.raises(ConfigError) as err:
        parse_compare(replace(grid_config, compare=grid))
    assert message in str(err.value)


def test_coins_and_windows_become_scenarios(tmp_path: Path) -> None:
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=40, symbols=("COIN", "AAA", "BBB", "CCC", "DDD", "EEE"))
    config = synthetic_config(
        prices,
        index={"constituents": ["BBB", "CCC", "DDD", "EEE"]},
        compare={
            "coins": ["COIN", "AAA"],
            "windows": [{"start": "2024-01-05", "end": "2024-01-25"}, {"start": "2024-01-20"}],
            "rules": [{"family": "notional"}],
        },
    )
    table = run_compare(config)
    assert len(table) == 2 * 2
    assert set(table["coin"]) == {"COIN", "AAA"}
    assert set(table["window"]) == {"2024-01-05..2024-01-25", "2024-01-20..2024-02-09"}
    assert (table["rank"] == 1).all()  # one variant per scenario


def test_dask_local_processes_equal_single_process(grid_config) -> None:
    local = run_compare(grid_config)
    pooled = run_compare(grid_config, scheduler="processes")
    pd.testing.assert_frame_equal(local, pooled)


def test_dask_distributed_cluster_equals_local(grid_config) -> None:
    from distributed import LocalCluster

    local = run_compare(grid_config)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster:
        remote = run_compare(grid_config, scheduler=cluster.scheduler_address)
    pd.testing.assert_frame_equal(local, remote)


def test_coins_mode_longer_rebalance_periods_give_fewer_trades(tmp_path: Path) -> None:
    """The constant-notional holding resets on one schedule (compare.reset_days) for every
    variant, so the rebalance policy decides the trades in between."""
    prices = write_synthetic_prices(tmp_path / "prices.parquet", n_days=60)
    config = synthetic_config(prices, compare={
        "coins": ["COIN"], "notional_usd": 1_000_000, "reset_days": 30,
        "rules": [{"family": "notional"}],
        "rebalance": [{"mode": "every", "every_bars": [24, 168, 720]}, {"mode": "band", "band": [0.2]}],
    })
    table = run_compare(config).set_index("rebalance")["trades"]
    t24, t168, t720 = (table[f"every {n} bars, fractional"] for n in (24, 168, 720))
    assert t24 > t168 > t720 > 0
    assert table["band 20%, fractional"] < t24


def test_reset_days_must_be_positive(grid_config) -> None:
    from dataclasses import replace

    with pytest.raises(ConfigError, match="compare.reset_days"):
        parse_compare(replace(grid_config, compare={"rules": [{"family": "none"}], "reset_days": 0}))


def test_walk_forward_scores_the_past_choice_on_the_next_year(rng) -> None:
    """Variant 'a' hedges well in 2021, 'b' from 2022 on: the choice made on 2021 is 'a', and
    it is scored (badly) on 2022; on 2021-2022 'b' is chosen and scored on 2023."""
    import numpy as np

    from backtest.grid import walk_forward

    years = np.repeat([2021, 2022, 2023], [100, 200, 100])
    f = rng.normal(0, 0.02, 400)
    u = f + rng.normal(0, 0.005, 400)
    good, bad = u - f, u - 0.2 * f
    a = np.where(years == 2021, good, bad)
    b = np.where(years == 2021, bad, good)
    rows = walk_forward(np.array([a, b]), u, years, ["a", "b"])
    assert [r["fold"] for r in rows] == [2022, 2023]
    first, second = rows
    assert first["chosen"] == "a" and first["train_end"] == 2021
    he = lambda h, m: 1 - np.var(h[m], ddof=1) / np.var(u[m], ddof=1)  # noqa: E731
    assert first["he_oos"] == pytest.approx(he(a, years == 2022))
    assert first["he_train"] == pytest.approx(he(a, years == 2021))
    assert first["he_oos"] < first["fold_best_he"] and first["fold_best"] == "b"
    assert second["chosen"] == "b" and second["he_oos"] == pytest.approx(he(b, years == 2023))
    assert first["in_sample_best"] == "b"


def test_compare_rows_carry_the_headline_interval(grid_config) -> None:
    from backtest.grid import run_compare_full

    result = run_compare_full(grid_config)
    t = result.table
    assert (t["he_horizon"] == "1D").all()
    hedged = t[t["family"] != "none"]
    assert (hedged["he_ci_lo"] <= hedged["he_headline"]).all() and (hedged["he_headline"] <= hedged["he_ci_hi"]).all()
    assert list(result.walk_forward.columns)[:5] == ["coin", "window", "underlying", "horizon", "fold"]
    assert result.walk_forward.empty  # 40 days: one calendar year, no fold to score


def test_rank_by_headline_he(grid_config) -> None:
    from dataclasses import replace

    table = run_compare(replace(grid_config, compare={**grid_config.compare, "rank_by": "he_headline"}))
    assert table.iloc[0]["he_headline"] == table["he_headline"].max()


def test_compare_pdf_states_the_walk_forward_check() -> None:
    """The compare PDF prints the walk-forward means of compare.json and the headline intervals."""
    import tempfile

    from pypdf import PdfReader

    from reports.pdf import write_compare_pdf

    table = pd.DataFrame({
        "coin": ["X", "X"], "window": ["w", "w"], "rank": [1, 2], "variant": ["a | every", "b | every"],
        "hedge_effectiveness": [0.4, 0.3], "he_vs_oracle": [1.0, 0.8], "vol_hedged_ann": [0.5, 0.6],
        "cost_drag_bps_per_year": [100.0, 50.0], "trades": [10, 5], "rolls": [1, 1], "margin_calls": [0, 0],
        "he_horizon": ["1D", "1D"], "he_headline": [0.5, 0.45], "he_ci_lo": [0.41, 0.36], "he_ci_hi": [0.58, 0.52],
    })
    info = {"rank_by": "hedge_effectiveness", "walk_forward": [{
        "coin": "X", "window": "w", "horizon": "1D", "folds": 3, "mean_he_oos_chosen": 0.444,
        "in_sample_best": "a | every", "mean_he_oos_in_sample_best": 0.471, "mean_fold_best_he": 0.5}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.pdf"
        write_compare_pdf(path, table, info, [])
        text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(path).pages)
    assert "over 3 yearly folds" in text and "44.4 %" in text and "47.1 %" in text
    assert "41.0 % .. 58.0 %" in text
    # the hindsight pick is named by what picked it (the headline HE), not as "the in-sample best" of a
    # ranking that may order by another figure
    assert "the best by HE 1D over the whole replay (picked with hindsight" in text


def test_a_window_outside_the_data_is_blamed_on_its_own_key(grid_config) -> None:
    """A ``compare.windows`` entry without data is ``compare.windows[i]`` (it was reported as
    ``scenario.start``, a key the user had set right)."""
    from dataclasses import replace

    grid = {"rules": [{"family": "none"}], "windows": [{"start": "2030-01-01", "end": "2030-02-01"}]}
    with pytest.raises(ConfigError) as err:
        run_compare(replace(grid_config, compare=grid))
    assert err.value.key == "compare.windows[0]" and "0 bars" in err.value.problem


@pytest.mark.parametrize("scheduler", [None, 3, "tcp://host", "udp://host:1"])
def test_a_scheduler_that_is_not_none_processes_or_a_tcp_address_is_refused(scheduler: object) -> None:
    from backtest.grid import check_scheduler

    with pytest.raises(ConfigError, match="--scheduler"):  # None was an AttributeError
        check_scheduler(scheduler)  # type: ignore[arg-type]
