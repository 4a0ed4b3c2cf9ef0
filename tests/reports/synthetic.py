"""A schema-conformant synthetic result folder for the report tests.

The simulator is developed separately, so the report tests build their own input: a
small, seeded replay of a long coin position hedged with short quarterly futures on an
index, written exactly as the simulator writes it (``ledger.parquet`` with
``backtest.schema.LEDGER_COLUMNS``, ``summary.json``, optionally ``compare.parquet``).

The accounting identities of the schema hold on every bar:

* ``equity_hedged = cash + alt_value + fut_unrealized``;
* ``equity_hedged[t] - equity_hedged[t-1]`` = the sum of the P&L columns;
* ``ret_unhedged = pnl_altcoin / alt_value[t-1]``,
  ``ret_hedged = (equity_hedged[t] - equity_hedged[t-1]) / alt_value[t-1]``.

Mechanics (deliberately simple): the coin holding is fixed; the index and the coin follow
correlated log-normal paths (with a rally in early January 2025 and a sell-off in the
DeepSeek window of late January 2025);
futures trade at ``index x (1 + carry x time to expiry + noise shrinking to 0 at expiry)``
and roll at expiry; a rule rebalances when its held ratio drifts outside a band; futures
P&L settles into the margin wallet every 8 bars and at rolls; a margin call tops the wallet
up from a reserve when the margin balance falls below maintenance, and margin above twice
the initial requirement is swept back to the reserve.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.schema import LEDGER_COLUMNS, PNL_COLUMN, PNL_COMPONENTS, RULE_METRICS
from reports import stats

__all__ = ["build_ledger", "build_result_dir", "build_compare", "rule_metrics"]

FEE_RATE = 0.0005
SLIP_RATE = 0.0002
INITIAL_MARGIN = 0.05
MAINT_MARGIN = 0.02
BAND = 0.05
UNITS = 100_000.0
RESERVE = 60_000.0
CARRY = 0.08


def _targets(rule: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if rule.startswith("static"):
        return np.full(n, 0.9)
    # a slowly moving "estimated" ratio between ~0.6 and ~1.1
    t = np.arange(n)
    return np.clip(0.85 + 0.2 * np.sin(2 * np.pi * t / 700.0) + rng.normal(0, 0.02, n), 0.3, 1.3)


def build_ledger(
    n_bars: int = 2000,
    *,
    rules: Sequence[str] = ("static_ols", "rolling_ols"),
    start: str = "2025-01-01T00:00:00Z",
    bars_per_day: float = 24.0,
    seed: int = 7,
) -> pd.DataFrame:
    """Simulate the synthetic ledger (rule-major row order)."""
    rng = np.random.default_rng(seed)
    bar = pd.Timedelta(days=1) / bars_per_day
    ts = pd.date_range(pd.Timestamp(start), periods=n_bars, freq=bar).as_unit("us")
    sig = 0.8 / math.sqrt(365 * bars_per_day)
    drift = np.zeros(n_bars)
    sell = (ts >= pd.Timestamp("2025-01-27", tz="UTC")) & (ts < pd.Timestamp("2025-02-03", tz="UTC"))
    drift[sell] = -0.25 / max(int(sell.sum()), 1)
    rally = (ts >= pd.Timestamp("2025-01-03", tz="UTC")) & (ts < pd.Timestamp("2025-01-17", tz="UTC"))
    drift[rally] = 0.3 / max(int(rally.sum()), 1)
    r_index = drift + rng.normal(0.0, sig, n_bars)
    r_coin = 1.1 * r_index + rng.normal(0.0, 0.9 * sig, n_bars)
    r_index[0] = r_coin[0] = 0.0
    index = 100.0 * np.exp(np.cumsum(r_index))
    price = 1.0 * np.exp(np.cumsum(r_coin))

    # quarterly-like contracts: expiries every 700 bars (last one after the end)
    period = 700
    expiry_bars = list(range(period, n_bars, period)) + [((n_bars // period) + 1) * period]
    expiry_ts = [ts[0] + b * bar for b in expiry_bars]
    noise = np.cumsum(rng.normal(0, 0.0004, n_bars))

    def fut(k: int, t: int) -> float:
        tau_bars = expiry_bars[k] - t
        tau = max(tau_bars, 0) / (365 * bars_per_day)
        shrink = max(tau_bars, 0) / period
        return float(index[t] * (1.0 + CARRY * tau + noise[t] * shrink))

    frames = []
    for rule in rules:
        target = _targets(rule, n_bars, rng)
        rows: dict[str, list[Any]] = {c: [] for c in LEDGER_COLUMNS}
        k = 0
        contracts = 0.0
        wallet = INITIAL_MARGIN * 0.9 * UNITS * price[0] * 1.05
        reserve = RESERVE
        unreal = 0.0
        eq_prev = math.nan
        av_prev = math.nan
        cash0 = wallet + reserve
        for t in range(n_bars):
            alt_value = UNITS * price[t]
            pnl_alt = 0.0 if t == 0 else UNITS * (price[t] - price[t - 1])
            pnl_fut = pnl_basis = 0.0
            if t > 0:
                f_now, f_prev = fut(k, t), fut(k, t - 1)
                pnl_fut = contracts * (f_now - f_prev)
                pnl_basis = contracts * ((f_now - index[t]) - (f_prev - index[t - 1]))
            unreal += pnl_fut
            rolled = False
            roll_contracts = roll_cost = 0.0
            if t == expiry_bars[k]:
                wallet += unreal
                unreal = 0.0
                roll_contracts = 2.0 * abs(contracts)
                roll_cost = -roll_contracts * index[t] * (FEE_RATE + SLIP_RATE) / 2.0
                k += 1
                rolled = True
            f = fut(k, t)
            held = -contracts * f / alt_value
            trade = 0.0
            if t == 0 or abs(held - target[t]) > BAND:
                new = -float(round(target[t] * alt_value / f))
                trade = abs(new - contracts)
                contracts = new
            fees = -trade * f * FEE_RATE
            slippage = -trade * f * SLIP_RATE
            if t % 8 == 0:
                wallet += unreal
                unreal = 0.0
            wallet += fees + slippage + roll_cost
            m_init = abs(contracts) * f * INITIAL_MARGIN
            m_req = abs(contracts) * f * MAINT_MARGIN
            if wallet + unreal > 2.0 * m_init:
                # sweep excess margin back to the reserve (cash is unchanged)
                sweep = wallet + unreal - 1.2 * m_init
                wallet -= sweep
                reserve += sweep
            call = False
            if wallet + unreal < m_req and reserve > 0:
                top = min(reserve, m_init - (wallet + unreal))
                wallet += top
                reserve -= top
                call = True
            cash = wallet + reserve
            equity = cash + alt_value + unreal
            ret_u = math.nan if t == 0 else pnl_alt / av_prev
            ret_h = math.nan if t == 0 else (equity - eq_prev) / av_prev
            values = {
                "ts": ts[t],
                "rule": rule,
                "alt_price": price[t],
                "alt_units": UNITS,
                "alt_value": alt_value,
                "index_level": index[t],
                "fut_price": f,
                "contract_id": expiry_ts[k].strftime("%Y-%m-%dT%H:%M:%SZ"),
                "contracts": contracts,
                "hedge_ratio_target": float(target[t]),
                "hedge_ratio_held": -contracts * f / alt_value,
                "trade_contracts": trade,
                "roll_contracts": roll_contracts,
                "rebalanced": trade > 0,
                "rolled": rolled,
                "cash": cash,
                "fut_unrealized": unreal,
                "equity_hedged": equity,
                "equity_unhedged": cash0 + alt_value,
                "pnl_altcoin": pnl_alt,
                "pnl_futures": pnl_fut,
                "pnl_basis": pnl_basis,
                "fees": fees,
                "slippage": slippage,
                "roll_cost": roll_cost,
                "funding": 0.0,
                "liquidation_cost": 0.0,
                "margin_balance": wallet + unreal,
                "margin_initial": m_init,
                "margin_required": m_req,
                "margin_excess": wallet + unreal - m_req,
                "margin_reserve": reserve,
                "margin_call": call,
                "liquidated": False,
                "ret_unhedged": ret_u,
                "ret_hedged": ret_h,
            }
            for c in LEDGER_COLUMNS:
                rows[c].append(values[c])
            eq_prev, av_prev = equity, alt_value
        frames.append(pd.DataFrame(rows))
    ledger = pd.concat(frames, ignore_index=True)
    ledger["ts"] = pd.to_datetime(ledger["ts"], utc=True).astype("datetime64[us, UTC]")
    for c in ("rebalanced", "rolled", "margin_call", "liquidated"):
        ledger[c] = ledger[c].astype(bool)
    not_float = ("ts", "rule", "contract_id", "rebalanced", "rolled", "margin_call", "liquidated")
    floats = [c for c in LEDGER_COLUMNS if c not in not_float]
    ledger[floats] = ledger[floats].astype("float64")
    return ledger[list(LEDGER_COLUMNS)]


def rule_metrics(g: pd.DataFrame, bars_per_day: float, oracle_r2: float) -> dict[str, Any]:
    """The summary's per-rule block computed from one rule's ledger."""
    ret_h = g["ret_hedged"].to_numpy()
    ret_u = g["ret_unhedged"].to_numpy()
    he = stats.hedge_effectiveness(ret_h, ret_u)
    years = len(g) / bars_per_day / 365.0
    costs = -(g["fees"].sum() + g["slippage"].sum() + g["roll_cost"].sum() + g["liquidation_cost"].sum())
    out: dict[str, Any] = {
        "hedge_effectiveness": he,
        "oracle_r2": oracle_r2,
        "he_vs_oracle": he / oracle_r2,
        "vol_unhedged_ann": stats.annualised_vol(ret_u, bars_per_day),
        "vol_hedged_ann": stats.annualised_vol(ret_h, bars_per_day),
        "max_drawdown_unhedged": stats.max_drawdown(ret_u),
        "max_drawdown_hedged": stats.max_drawdown(ret_h),
        "trades": int(g["rebalanced"].sum()),
        "rolls": int(g["rolled"].sum()),
        "margin_calls": int(g["margin_call"].sum()),
        "liquidations": int(g["liquidated"].sum()),
        "min_margin_excess": float(g["margin_excess"].min()),
        "min_safe_collateral": float(max(0.0, -g["margin_excess"].min()) + g["margin_initial"].iloc[0]),
        "turnover_contracts": float(g["trade_contracts"].abs().sum() + g["roll_contracts"].abs().sum()),
        "cost_drag_bps_per_year": float(costs / g["alt_value"].mean() / years * 1e4),
        "futures_basis_pnl": float(g["pnl_basis"].sum()),
    }
    scale = 1e4 / g["alt_value"].mean() / years
    carry = float(g["pnl_basis"].sum())  # quarterly futures: the carry is the basis P&L
    out.update({
        "cost_trading_usd": float(costs),
        "cost_trading_bps_per_year": float(costs * scale),
        "carry_usd": carry,
        "carry_bps_per_year": carry * scale,
        "net_cost_usd": float(costs - carry),
        "net_cost_bps_per_year": float((costs - carry) * scale),
    })
    assert set(out) == set(RULE_METRICS)
    pnl = {c: float(g[PNL_COLUMN[c]].sum()) for c in PNL_COMPONENTS}
    pnl["total"] = float(sum(pnl.values()))
    out["pnl"] = pnl
    return out


def build_compare(n: int = 12, *, seed: int = 3) -> pd.DataFrame:
    """A synthetic rule-comparison grid (``compare.parquet`` layout)."""
    rng = np.random.default_rng(seed)
    families = ["static", "rolling_ols", "ewma"]
    rows = []
    for i in range(n):
        fam = families[i % 3]
        he = float(rng.uniform(0.2, 0.5))
        cost = float(rng.uniform(20, 400))
        row: dict[str, Any] = {
            "variant": f"{fam}_{i:02d}",
            "family": fam,
            "params": f"window={24 * (i + 1)}",
            "rebalance": "band=0.05" if i % 2 else "every=24h",
        }
        for key in RULE_METRICS:
            row[key] = float(rng.uniform(0, 1))
        row["hedge_effectiveness"] = he
        row["oracle_r2"] = 0.52
        row["he_vs_oracle"] = he / 0.52
        row["cost_drag_bps_per_year"] = cost
        rows.append(row)
    df = pd.DataFrame(rows)
    df["rank"] = df["hedge_effectiveness"].rank(ascending=False, method="first").astype("int64")
    return df.sort_values("rank", kind="stable").reset_index(drop=True)


def build_result_dir(
    path: Path,
    *,
    n_bars: int = 2000,
    rules: Sequence[str] = ("static_ols", "rolling_ols"),
    start: str = "2025-01-01T00:00:00Z",
    bars_per_day: float = 24.0,
    seed: int = 7,
    compare: bool = True,
    funding_is_proxy: bool = True,
    shuffle: bool = False,
) -> Path:
    """Write ``ledger.parquet``, ``summary.json`` (and ``compare.parquet``) into ``path``.

    Parameters
    ----------
    path : Path
        Folder to create (parents too).
    shuffle : bool
        Write the ledger rows in a seeded random order (readers must not rely on order).

    Returns
    -------
    Path
        ``path``.
    """
    path.mkdir(parents=True, exist_ok=True)
    ledger = build_ledger(n_bars, rules=rules, start=start, bars_per_day=bars_per_day, seed=seed)
    first = ledger[ledger["rule"] == rules[0]]
    ri = first["index_level"].pct_change().to_numpy()
    ru = first["ret_unhedged"].to_numpy()
    ok = np.isfinite(ri) & np.isfinite(ru)
    oracle = float(np.corrcoef(ri[ok], ru[ok])[0, 1] ** 2)
    summary = {
        "hedgebt_version": "0.1.0",
        "scenario": {
            "name": "fet_vs_ai_index",
            "coins": ["FET"],
            "index": "ai_equal_weight",
            "futures_kind": "quarterly",
            "funding_source": "data/binance_usdm_perp_funding_8h.parquet" if funding_is_proxy else None,
            "funding_is_proxy": funding_is_proxy,
            "description": "Long FET hedged with short quarterly futures on an equal-weight AI-token index "
            "(synthetic test data).",
        },
        "period": {
            "start": ledger["ts"].min().isoformat(),
            "end": ledger["ts"].max().isoformat(),
            "bars": int(n_bars),
            "bar": "1h" if bars_per_day == 24 else "1D",
            "bars_per_day": float(bars_per_day),
        },
        "oracle_r2": oracle,
        "rules": {
            r: rule_metrics(ledger[ledger["rule"] == r].reset_index(drop=True), bars_per_day, oracle) for r in rules
        },
        "config": {
            "scenario": {"name": "fet_vs_ai_index", "coins": ["FET"], "capital_usd": 100000.0},
            "index": {
                "method": "equal_weight",
                "constituents": ["NEAR", "GRT", "INJ", "AR", "ICP", "FIL", "THETA", "ROSE", "LPT"],
                "rebalance": "monthly",
            },
            "futures": {"kind": "quarterly", "contract_size": 1.0, "carry_annual": CARRY},
            "fees": {"taker_bps": FEE_RATE * 1e4, "slippage_bps": SLIP_RATE * 1e4},
            "margin": {"initial": INITIAL_MARGIN, "maintenance": MAINT_MARGIN, "reserve_usd": RESERVE},
            "rules": {r: {"band": BAND} for r in rules},
        },
        "inputs": [
            {"role": "prices", "path": "data/binance_spot_1h_close.parquet", "sha256": "ab" * 32},
            {"role": "funding", "path": "data/binance_usdm_perp_funding_8h.parquet", "sha256": "cd" * 32},
        ],
        "packages": {"numpy": np.__version__, "pandas": pd.__version__},
        "data": {"provenance": "synthetic prices generated by tests/reports/synthetic.py (seeded)", "gaps": []},
    }
    if shuffle:
        ledger = ledger.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    ledger.to_parquet(path / "ledger.parquet", index=False)
    summary["ledger_sha256"] = hashlib.sha256((path / "ledger.parquet").read_bytes()).hexdigest()
    (path / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    if compare:
        build_compare().to_parquet(path / "compare.parquet", index=False)
    return path


def build_compare_grid(*, seed: int = 5) -> pd.DataFrame:
    """A compare table like ``hedgebt compare`` writes for two coins: ``none`` under every
    rebalance policy (identical rows, cost -0.0), ``ewma`` half-life x rebalance, and one
    very costly ``dynamic`` outlier."""
    rng = np.random.default_rng(seed)
    rebalances = ["every 1 bars", "every 24 bars", "every 168 bars", "band 0.05"]
    rows = []
    for coin in ("FET", "RNDR"):
        for reb in rebalances:
            rows.append({"family": "none", "params": "{}", "rebalance": reb, "he": 0.0, "cost": -0.0})
            for hl in (48, 168, 720):
                rows.append({"family": "ewma", "params": json.dumps({"halflife": hl}), "rebalance": reb,
                             "he": float(rng.uniform(0.38, 0.44)), "cost": float(rng.uniform(50, 450))})
        rows.append({"family": "dynamic", "params": json.dumps({"refit_bars": 720}), "rebalance": rebalances[0],
                     "he": 0.3, "cost": 4000.0})
        for r in rows[-(len(rebalances) * 4 + 1):]:
            r["coin"] = coin
    out = []
    for r in rows:
        row: dict[str, Any] = {key: 0.0 for key in RULE_METRICS}
        label = r["family"] + ("" if r["params"] == "{}" else f"({','.join(f'{k}={v}' for k, v in json.loads(r['params']).items())})")
        row.update({"coin": r["coin"], "window": "2021-01-01..end", "variant": f"{label} | {r['rebalance']}",
                    "family": r["family"], "rule": label, "params": r["params"], "rebalance": r["rebalance"],
                    "hedge_effectiveness": r["he"], "oracle_r2": 0.42, "he_vs_oracle": r["he"] / 0.42,
                    "cost_drag_bps_per_year": r["cost"]})
        out.append(row)
    df = pd.DataFrame(out)
    df["rank"] = df.groupby("coin")["hedge_effectiveness"].rank(ascending=False, method="first").astype("int64")
    return df.sort_values(["coin", "window", "rank"], kind="stable").reset_index(drop=True)


def restamp_ledger(folder: Path) -> None:
    """Set ``summary.json``'s ``ledger_sha256`` to the ledger now in ``folder`` (after a test edited
    the ledger on purpose, to reach the checks behind the hash check)."""
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    summary["ledger_sha256"] = hashlib.sha256((folder / "ledger.parquet").read_bytes()).hexdigest()
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
