"""Scale: contract prices stored per contract over their live range, the kernel's T x S slot
matrix, the report on the top ``[report] max_rules`` rules, and (slow) peak memory."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtest import contracts as C
from backtest import kernels as K
from backtest.config import RollSection
from backtest.market import Market, Variant, pack_variants, run_variant
from backtest.reference import simulate_reference
from scenarios import random_market

ROOT = Path(__file__).resolve().parents[2]


def _hourly_close(start: str, end: str) -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq="h", tz="UTC", inclusive="left") + pd.Timedelta(hours=1)


def _dense_modelled(close: pd.DatetimeIndex, idx: np.ndarray, basis: float, k: int, expiry: pd.Timestamp,
                    exp_bar: int) -> np.ndarray:
    """Contract ``k``'s column as the former dense book computed it (every bar up to settlement)."""
    tau = np.maximum(np.asarray((expiry - close) / pd.Timedelta(days=365), dtype=float), 0.0)
    col = np.full(len(close), np.nan)
    live = np.arange(len(close)) <= exp_bar
    col[live] = idx[live] * np.exp(basis * tau[live])
    if exp_bar < len(close):
        col[exp_bar] = idx[exp_bar]
    return col


def test_ninety_years_of_hourly_quarterlies_take_memory_linear_in_bars() -> None:
    """2009-2099 hourly (about 789,000 bars, 365 contracts): the book keeps about 2 prices per bar
    (a dense bars x contracts matrix would hold 288 million), the kernel matrix has 2 columns,
    and every price the replay uses equals the dense formula bit for bit."""
    close = _hourly_close("2009-01-01", "2099-01-01")
    T = len(close)
    idx = 1000.0 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.003, T)))
    book = C.modelled_quarterly(close, idx, 0.07)
    n_contracts = len(book.labels)
    assert n_contracts > 360
    assert book.values.size <= C.LISTED_AFTER * T + 100 * 24  # not T x K
    for roll in (RollSection(), RollSection(mode="hold_to_expiry"), RollSection(days_before_expiry=60, grace_bars=48)):
        schedule = C.roll_schedule(close, book, roll)
        slots = C.slot_prices(book, schedule)
        assert slots.shape == (T, 2)
        C.check_coverage(book, schedule, close)
        for k in (0, 1, 2, 150, n_contracts - 3, n_contracts - 2):
            used = np.flatnonzero((schedule.c0 == k) | (schedule.c1 == k))
            if not used.size:
                continue
            dense = _dense_modelled(close, idx, 0.07, k, book.expiry[k], int(book.exp_bar[k]))
            assert np.array_equal(slots[used, k % 2], dense[used])
            assert np.array_equal(book.prices(used, np.full(used.size, k)), dense[used])


def test_user_futures_file_book_equals_per_contract_alignment(tmp_path: Path, rng: np.random.Generator) -> None:
    """The flat book of a user file holds exactly what aligning each contract's rows to the bars
    gave: rows off the grid, of contracts expired before the first close and after settlement ignored,
    holes NaN, the settlement bar at the index (or the file's price)."""
    close = _hourly_close("2024-01-01", "2024-09-01")
    T = len(close)
    idx = 1000.0 * np.exp(np.cumsum(rng.normal(0, 0.004, T)))
    opens = close - pd.Timedelta(hours=1)
    expiries = C.quarterly_expiries(close[0], close[-1] + pd.Timedelta(days=92))
    rows = []
    for exp in expiries:
        sel = (rng.random(T) > 0.05) & (rng.random() > 0.1 or np.arange(T) > T // 3)
        rows.append(pd.DataFrame({"ts": opens[sel], "expiry": exp, "close": idx[sel] * rng.uniform(0.99, 1.02)}))
    rows.append(pd.DataFrame({"ts": [opens[3] + pd.Timedelta(minutes=30)], "expiry": [expiries[0]], "close": [5.0]}))
    rows.append(pd.DataFrame({"ts": [opens[3]], "expiry": [pd.Timestamp("2023-12-29 08:00", tz="UTC")], "close": [5.0]}))
    frame = pd.concat(rows, ignore_index=True)
    path = tmp_path / "fut.parquet"
    frame.to_parquet(path, index=False)
    for settle in (True, False):
        book = C.quarterly_from_prices(close, idx, path, settle_at_index=settle)
        assert list(book.expiry) == expiries
        for k, exp in enumerate(expiries):
            series = frame.loc[frame["expiry"] == exp].set_index("ts")["close"]
            want = np.array(series.reindex(opens).to_numpy(dtype=float), copy=True)
            e = int(book.exp_bar[k])
            if e < T:
                if settle:
                    want[e] = idx[e]
                want[e + 1 :] = np.nan
            assert np.array_equal(book.column(k), want, equal_nan=True), (k, settle)
        assert np.array_equal(book.px, np.column_stack([book.column(k) for k in range(len(expiries))]), equal_nan=True)


def _slot_market(m: Market) -> Market:
    """The same market with its contracts packed into the fewest price columns (slot form)."""
    book = C.ContractBook(
        labels=tuple(str(k) for k in range(m.px.shape[1])), expiry=(None,) * m.px.shape[1],
        values=m.px.T.ravel().copy(), start=np.zeros(m.px.shape[1], np.int64),
        offset=np.arange(m.px.shape[1] + 1, dtype=np.int64) * m.n_bars, exp_bar=m.exp_bar, kind="quarterly",
        source="test", n_bars=m.n_bars,
    )
    return replace(m, px=C.slot_prices(book, C.RollSchedule(m.c0, m.c1, m.w1)))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("grace", [1, 3])
def test_slot_columns_give_the_dense_results_bit_for_bit(seed: int, grace: int) -> None:
    """Both kernels and the reference on the slot form (contract k in column k % 2) equal the dense
    form (one column per contract) exactly, rolls, settlements and margin calls included."""
    rng = np.random.default_rng(seed)
    dense = random_market(rng, 400, n_contracts=5, grace=grace)
    slots = _slot_market(dense)
    assert slots.px.shape[1] == 2 and dense.px.shape[1] == 5
    variants = [
        Variant(hr_col=0, fee_bps=3.0, every_bars=7, margin_enabled=True, collateral_usd=2e5, reserve_usd=1e5,
                settlement_fee_bps=2.0),
        Variant(hr_col=1, mode="band", band=0.05, whole_contracts=True, margin_enabled=True, collateral_usd=5e4,
                policy="cut_hedge"),
        Variant(hr_col=0, every_bars=1, half_spread_bps=2.0, margin_enabled=True, collateral_usd=1e4),
    ]
    for v in variants:
        rows_d, summ_d = run_variant(dense, v)
        rows_s, summ_s = run_variant(slots, v)
        for name in K.OUT:
            assert np.array_equal(rows_d[name], rows_s[name], equal_nan=True), name
        assert summ_d == summ_s or all(np.isnan(summ_d[k]) and np.isnan(summ_s[k]) or summ_d[k] == summ_s[k]
                                       for k in summ_d)
        ref = simulate_reference(slots, v)
        np.testing.assert_allclose(ref["equity_hedged"], rows_s["equity_hedged"], rtol=1e-9, atol=1e-6)
    fps, ips = pack_variants(variants * 12)
    many_d = K.simulate_many_nb(*dense.kernel_args()[:-1], dense.contract_size, fps, ips)
    many_s = K.simulate_many_nb(*slots.kernel_args()[:-1], slots.contract_size, fps, ips)
    assert np.array_equal(many_d, many_s, equal_nan=True)


def test_slot_matrix_widens_to_the_span_of_contracts_used_together() -> None:
    """A schedule jumping from contract 0 to 2 uses both on bar 3 (0 is marked and rolled out):
    the matrix gets 3 columns (the span), so they never share one."""
    T = 6
    book = C.ContractBook(labels=("A", "B", "C"), expiry=(None,) * 3, values=np.arange(18.0) + 1, start=np.zeros(3, np.int64),
                          offset=np.arange(4, dtype=np.int64) * T, exp_bar=np.array([10**12] * 3), kind="quarterly",
                          source="test", n_bars=T)
    sched = C.RollSchedule(np.array([0, 0, 0, 2, 2, 2]), np.full(T, -1), np.zeros(T))
    out = C.slot_prices(book, sched)
    assert out.shape == (T, 3)
    assert out[3, 0] == book.prices(np.array([3]), np.array([0]))[0]  # contract 0 still marked on bar 3
    assert out[3, 2] == book.prices(np.array([3]), np.array([2]))[0]


def test_market_contract_price_reads_column_k_mod_s() -> None:
    rng = np.random.default_rng(5)
    dense = random_market(rng, 200, n_contracts=4)
    slots = _slot_market(dense)
    t = np.arange(1, dense.n_bars)
    for k_arr in (dense.c0[1:], dense.c0[:-1]):
        assert np.array_equal(dense.contract_price(t, k_arr), slots.contract_price(t, k_arr))


# --------------------------------------------------------------------------- report on the top rules


def test_max_rules_key_is_checked_and_left_out_of_the_summary_at_its_default(synthetic_prices: Path) -> None:
    from backtest.config import config_to_dict
    from backtest.errors import ConfigError
    from conftest import synthetic_config

    assert "max_rules" not in config_to_dict(synthetic_config(synthetic_prices))["report"]
    assert config_to_dict(synthetic_config(synthetic_prices, report={"max_rules": 3}))["report"]["max_rules"] == 3
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ConfigError, match="report.max_rules"):
            synthetic_config(synthetic_prices, report={"max_rules": bad})


def _metrics(he: list[float], families: list[str]) -> tuple[dict, pd.DataFrame]:
    rules = [f"r{i}" for i in range(len(he))]
    best = rules[int(np.nanargmax(he))]
    metrics = pd.DataFrame({
        "rule": rules, "he_horizon": "1D", "he_1D": he, "best_rule": best, "liquidations": 0,
        "he_diff_vs_best": 0.0, "he_diff_lo": -0.1, "he_diff_hi": 0.1, "cost_diff_vs_best_bps_per_year": 0.0,
        "cost_diff_lo": 1.0, "cost_diff_hi": 2.0, "he_ci_level": 0.95,
    })
    summary = {"rules": {r: {"family": f} for r, f in zip(rules, families)}, "config": {"report": {"max_rules": 3}}}
    return summary, metrics


def test_report_rules_are_the_best_by_he_plus_the_baseline_in_summary_order() -> None:
    from reports.render import report_rules

    he = [0.1, 0.5, np.nan, 0.7, 0.2, 0.6, 0.65]
    summary, metrics = _metrics(he, ["ewma"] * 4 + ["notional"] + ["ewma"] * 2)
    # top 3 by HE: r3 (0.7), r6 (0.65), r5 (0.6); baseline: the notional rule r4; NaN never ranks
    assert report_rules(summary, metrics) == ("r3", "r4", "r5", "r6")
    summary["config"]["report"]["max_rules"] = 7
    assert report_rules(summary, metrics) == tuple(f"r{i}" for i in range(7))
    summary, metrics = _metrics([0.3, 0.2, 0.1, 0.4], ["ewma"] * 4)
    summary["config"]["report"]["max_rules"] = 1
    assert report_rules(summary, metrics) == ("r0", "r3")  # no notional rule: the first rule is the baseline


def test_a_report_with_more_rules_than_max_rules_shows_the_top_ones(synthetic_prices: Path, monkeypatch) -> None:
    import backtest as hb
    from conftest import synthetic_config
    from reports import render

    rules = [{"family": "notional", "fraction": 1.0}] + [{"family": "ewma", "halflife": float(h)} for h in (12, 48, 168)]
    cfg = synthetic_config(synthetic_prices, rules=rules, report={"max_rules": 2})
    seen: dict = {}
    real_pdf = render.write_pdf

    def spy(path, summary, metrics_df, events_df, figures, compare=None, **kw):  # type: ignore[no-untyped-def]
        seen.update(summary=summary, metrics=metrics_df, events=events_df, note=kw.get("rules_note", ""))
        return real_pdf(path, summary, metrics_df, events_df, figures, compare, **kw)

    monkeypatch.setattr(render, "write_pdf", spy)
    res = hb.run(cfg)
    out = synthetic_prices.parent / "out"
    res.save(out)
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 4  # the full table
    shown = render.report_rules(res._summary, res._metrics)
    assert 2 <= len(shown) <= 4 and shown[0] == "notional"
    assert list(seen["metrics"]["rule"]) == list(shown)
    assert list(seen["summary"]["rules"]) == list(shown)
    assert set(seen["events"]["rule"]) <= set(shown)
    assert seen["note"].startswith(f"Showing {len(shown)} of 4 rules")
    assert (out / "report.pdf").stat().st_size > 0


# --------------------------------------------------------------------------- peak memory (slow)


def _memory_module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import memory
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return memory


@pytest.mark.slow
def test_two_million_bars_of_one_coin_stay_under_two_gigabytes(tmp_path: Path) -> None:
    memory = _memory_module()
    rss, _, rc = memory.case_bars(tmp_path, 2_000_000)
    assert rc == 0
    assert rss < 2 * 1024**3, f"peak RSS {rss / 1024**3:.2f} GB"


@pytest.mark.slow
def test_ten_thousand_rules_with_the_report_stay_under_two_gigabytes(tmp_path: Path) -> None:
    memory = _memory_module()
    rss, _, rc = memory.case_rules(tmp_path, 10_000, 7)
    assert rc == 0
    assert rss < 2 * 1024**3, f"peak RSS {rss / 1024**3:.2f} GB"
    assert len(pd.read_csv(tmp_path / "out" / "metrics.csv")) == 10_000


def test_block_length_of_a_short_series_is_one() -> None:
    """Fewer than 8 spans (a week of daily spans): arch's estimator would raise; block length 1."""
    from reports.stats import block_length

    rng = np.random.default_rng(0)
    for n in range(1, 8):
        assert block_length(rng.normal(size=n), rng.normal(size=n)) == 1
    assert 1 <= block_length(rng.normal(size=40), rng.normal(size=40)) <= 40


def test_streamed_ledger_hash_equals_the_hash_of_the_bytes(synthetic_prices: Path) -> None:
    import hashlib

    from backtest.results import ledger_bytes, ledger_sha256, run
    from conftest import synthetic_config

    res = run(synthetic_config(synthetic_prices))
    assert ledger_sha256(res.ledger) == hashlib.sha256(ledger_bytes(res.ledger)).hexdigest()


def test_a_one_rule_ledger_made_of_the_kernel_rows_writes_the_same_bytes(synthetic_prices: Path) -> None:
    """The one-rule ledger (kernel rows as columns, not consolidated) writes the same Parquet bytes
    as a consolidated copy of it, and as the same rule's block in a two-rule run."""
    from backtest.results import ledger_bytes, run
    from conftest import synthetic_config

    one = run(synthetic_config(synthetic_prices, rules=[{"family": "notional", "fraction": 1.0}])).ledger
    assert ledger_bytes(one) == ledger_bytes(one.copy(deep=True))
    two = run(synthetic_config(synthetic_prices)).ledger
    block = two[two["rule"] == "notional"].reset_index(drop=True)
    assert ledger_bytes(one) == ledger_bytes(block)


# --------------------------------------------------------------------------- the ledger-rows limit of a run
def _rules(n: int) -> list[dict]:
    return [{"family": "ewma", "halflife": 6.0 + 0.01 * i, "label": f"ewma_{i}"} for i in range(n)]


def test_a_run_above_the_ledger_limit_is_refused_before_any_hedge_ratio(synthetic_prices: Path, monkeypatch) -> None:
    """rules x bars one row above the limit: ConfigError on key ``rules`` naming the count, raised
    before the market stage (hedge ratios) starts; exactly at the limit the run goes through."""
    import backtest as hb
    from backtest import engine
    from backtest.errors import ConfigError
    from conftest import synthetic_config

    cfg = synthetic_config(synthetic_prices, rules=_rules(3))
    n_bars = engine.prepare(cfg).market.n_bars
    monkeypatch.setattr(engine, "MAX_LEDGER_ROWS", 3 * n_bars - 1)
    real_stage = engine._market_stage

    def no_market(*a, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("hedge ratios estimated before the limit was checked")

    monkeypatch.setattr(engine, "_market_stage", no_market)
    with pytest.raises(ConfigError, match=rf"'rules': 3 rules x {n_bars:,} bars = {3 * n_bars:,} per-bar ledger rows") as err:
        hb.run(cfg)
    assert "hedgebt compare" in str(err.value)
    monkeypatch.setattr(engine, "_market_stage", real_stage)
    monkeypatch.setattr(engine, "MAX_LEDGER_ROWS", 3 * n_bars)
    res = hb.run(cfg)
    assert len(res.ledger) == 3 * n_bars
    # a prepared scenario handed to the run is checked too
    monkeypatch.setattr(engine, "MAX_LEDGER_ROWS", 3 * n_bars - 1)
    from backtest.results import run
    with pytest.raises(ConfigError, match="'rules'"):
        run(cfg, prepared=engine.prepare(cfg))


def test_the_cli_refuses_over_a_thousand_rules_on_ninety_days_in_one_line(synthetic_prices: Path, capsys,
                                                                     monkeypatch) -> None:
    """1,200 rules x about 2,000 hourly bars = about 2.4 M rows > 2 M: exit 2, one line, no output folder,
    and no hedge ratio estimated first."""
    import tomllib

    from backtest import engine
    from backtest.cli import main
    from backtest.engine import MAX_LEDGER_ROWS

    def no_market(*a, **kw):  # type: ignore[no-untyped-def]
        raise AssertionError("hedge ratios estimated before the limit was checked")

    monkeypatch.setattr(engine, "_market_stage", no_market)

    assert MAX_LEDGER_ROWS == 2_000_000
    from conftest import SYNTHETIC_SCENARIO

    lines = [SYNTHETIC_SCENARIO, '[futures]\nkind = "quarterly"\ncontract_size = 1.0\n']
    lines += [f'[[rules]]\nfamily = "ewma"\nhalflife = {6.0 + 0.01 * i:.2f}\nlabel = "e{i}"\n' for i in range(1200)]
    cfg = synthetic_prices.parent / "many.toml"
    cfg.write_text("\n".join(lines), encoding="utf-8")
    tomllib.loads(cfg.read_text(encoding="utf-8"))
    out = synthetic_prices.parent / "out"
    assert main(["run", str(cfg), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "config key 'rules': 1,200 rules x " in err[0] and "above the 2,000,000 a run keeps" in err[0], err[0]
    assert not out.exists()
