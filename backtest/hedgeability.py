"""Coin scan: which coins can be hedged at all, and with what -- a hedgeability league table.

``hedgebt scan [CONFIG] --coins all --out DIR`` replays, for every coin of the price data
with at least ``--min-days`` days of history (default :data:`MIN_HISTORY_DAYS` = 180) inside
the scenario window, a constant USD holding of that coin (``--notional-usd``, reset at each
hedge rebalance) hedged with every configured rule on futures on every underlying
(``--underlyings``, default ``index,BTC,ETH``). All else (fees, slippage, futures kind, rolls,
margin, rebalancing) is the config's.

Per coin the window is the same for every underlying: from the later of the scenario start,
the coin's first bar and the index's first level (when the index is scanned) to the earliest
of the scenario end, the coin's last bar and the last bar every live instrument has (price
files end ragged by an hour or two). The index excludes the scanned coin (unless
``index.include_hedged_coins``), so each coin is hedged with the index of the *other*
constituents. Symbols used as underlyings (``BTC``, ``ETH``) are not scanned as coins.

Figures per coin and underlying: the oracle rho^2 (in-sample squared correlation of coin and
futures returns per bar: the best any constant hedge can do), the daily hedge effectiveness
``HE_1D = 1 - Var(D_h) / Var(D_u)`` where ``D_h``, ``D_u`` are the non-overlapping UTC-day
sums of the hedged and unhedged P&L (USD; complete days only, ``ddof = 1``), and the annual
cost drag. The best rule per underlying and the best underlying per coin are those with the
highest ``HE_1D``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest.config import BOUNDS, Config, PositionSection, is_number
from backtest.engine import InputFile, Prepared, prepare, result_record, variant_for
from backtest.errors import ConfigError, DataError
from backtest.instrument import is_index
from backtest.market import run_variant
from backtest.metrics import summary_metrics

__all__ = ["MIN_HISTORY_DAYS", "ScanRun", "ScanSpec", "coin_spans", "daily_he", "run_scan", "scan_info", "write_scan_tables"]

#: coins with fewer days of data inside the scenario window are listed as skipped
MIN_HISTORY_DAYS = 180
#: Largest USD holding per coin (``--notional-usd``): the bound of ``position.notional_usd``.
MAX_NOTIONAL_USD = BOUNDS["position.notional_usd"]


@dataclass(frozen=True)
class ScanSpec:
    """What to scan.

    Attributes
    ----------
    coins : tuple of str
        Coins to scan; empty = every symbol of the price data except the underlyings.
    underlyings : tuple of str
        Futures underlyings compared per coin (``"index"`` or symbols).
    min_history_days : float
        Days of data a coin needs inside the scenario window.
    notional_usd : float
        USD held in each coin.
    """

    coins: tuple[str, ...] = ()
    underlyings: tuple[str, ...] = ("index", "BTC", "ETH")
    min_history_days: float = MIN_HISTORY_DAYS
    notional_usd: float = 1_000_000.0

    def __post_init__(self) -> None:
        for key, names in (("--coins", self.coins), ("--underlyings", self.underlyings)):
            if not all(isinstance(n, str) and n for n in names):
                raise ConfigError(key, f"expected symbols (non-empty strings), got {list(names)!r}")
        for key, value in (("--min-days", self.min_history_days), ("--notional-usd", self.notional_usd)):
            if not is_number(value):
                raise ConfigError(key, f"expected a number, got {value!r}")
        if not self.underlyings or len(set(self.underlyings)) != len(self.underlyings):
            raise ConfigError("--underlyings", f"expected distinct underlyings, got {list(self.underlyings)}")
        if not (math.isfinite(self.min_history_days) and self.min_history_days > 0):
            raise ConfigError("--min-days", f"expected a number of days > 0, got {self.min_history_days}")
        if not (math.isfinite(self.notional_usd) and 0 < self.notional_usd <= MAX_NOTIONAL_USD):
            raise ConfigError("--notional-usd", f"expected a USD amount > 0 and <= {MAX_NOTIONAL_USD:g} (the bound of "
                                                f"position.notional_usd), got {self.notional_usd:g}")


def coin_spans(config: Config) -> pd.DataFrame:
    """First and last bar of every symbol in the price file(s): columns ``symbol``, ``first``, ``last``."""
    names = (config.data.prices,) if isinstance(config.data.prices, str) else tuple(config.data.prices)
    frames = []
    for name in names:
        path = config.resolve(name)
        try:
            raw = pd.read_parquet(path, columns=["ts", "symbol"])
        except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
            raise DataError(path, f"cannot read the price file: {exc}") from None
        frames.append(raw.assign(symbol=raw["symbol"].astype(str)).groupby("symbol")["ts"].agg(["min", "max"]))
    spans = pd.concat(frames).sort_index()
    return pd.DataFrame({"symbol": spans.index, "first": spans["min"].to_numpy(), "last": spans["max"].to_numpy()})


def daily_he(ts: pd.DatetimeIndex, bar: pd.Timedelta, pnl_hedged: np.ndarray, pnl_unhedged: np.ndarray) -> float:
    """``1 - Var(D_h) / Var(D_u)`` over non-overlapping UTC-day sums of per-bar P&L.

    Bar ``t``'s P&L (earned over the bar ending at ``ts[t] + bar``) is assigned to the UTC day
    of ``ts[t]``; only days with all ``1 day / bar`` bars and finite P&L count; ``ddof = 1``.
    NaN with fewer than 3 such days or a constant unhedged series.
    """
    per_day = int(round(pd.Timedelta(days=1) / bar))
    frame = pd.DataFrame({"h": pnl_hedged, "u": pnl_unhedged}, index=ts)
    ok = np.isfinite(frame["h"].to_numpy()) & np.isfinite(frame["u"].to_numpy())
    frame = frame[ok]
    day = frame.index.floor("D")
    sums = frame.groupby(day).sum()
    counts = frame.groupby(day).size()
    sums = sums[counts.to_numpy() == per_day]
    if len(sums) < 3:
        return math.nan
    var_u = float(np.var(sums["u"].to_numpy(), ddof=1))
    if not var_u > 0:
        return math.nan
    return 1.0 - float(np.var(sums["h"].to_numpy(), ddof=1)) / var_u


def _coin_config(config: Config, coin: str, notional: float, start: pd.Timestamp, end: pd.Timestamp, underlying: str) -> Config:
    return replace(
        config,
        position=PositionSection(coins=(coin,), kind="notional", notional_usd=(notional,), units=()),
        scenario=replace(config.scenario, start=start.isoformat(), end=end.isoformat()),
        futures=replace(config.futures, underlying=underlying),
    )


def _rows_for(config: Config, p: Prepared, coin: str, underlying: str) -> list[dict[str, Any]]:
    """One row per rule: oracle, per-bar and daily HE, cost, margin calls."""
    out = []
    T = len(p.ts)
    for col, label in enumerate(p.rule_labels):
        rows, summ = run_variant(p.market, variant_for(config, col))
        pnl_u = np.full(T, np.nan)
        pnl_h = np.full(T, np.nan)
        pnl_u[1:] = p.market.alt_pnl[1:]
        pnl_h[1:] = rows["ret_hedged"][1:] * p.market.alt_value[:-1]
        m = summary_metrics(summ, n_bars=T, bar=p.bar, oracle=p.notes.oracle_r2,
                            futures_kind=config.futures.kind)
        out.append({
            "coin": coin, "underlying": underlying, "rule": label,
            "start": p.ts[0].isoformat(), "end": p.ts[-1].isoformat(),
            "days": float((p.ts[-1] - p.ts[0] + p.bar) / pd.Timedelta(days=1)),
            "oracle_r2": p.notes.oracle_r2,
            "he_bar": m["hedge_effectiveness"],
            "he_daily": daily_he(p.ts, p.bar, pnl_h, pnl_u),
            "cost_drag_bps_per_year": m["cost_drag_bps_per_year"],
            "margin_calls": int(summ["margin_calls"]),
        })
    return out


def _scan_coin(config: Config, spec: ScanSpec, coin: str, start: pd.Timestamp,
               end: pd.Timestamp) -> tuple[list[dict[str, Any]], list[InputFile]]:
    """All underlyings x rules for one coin on a common window (index first: it fixes the start),
    and the files their preparations read."""
    order = sorted(spec.underlyings, key=lambda u: not is_index(u))
    rows: list[dict[str, Any]] = []
    inputs: list[InputFile] = []
    for u in order:
        cfg = _coin_config(config, coin, spec.notional_usd, start, end, u)
        p = prepare(cfg)
        if is_index(u) and p.ts[0] > start:
            start = p.ts[0]
        rows.extend(_rows_for(cfg, p, coin, u))
        inputs.extend(p.inputs)
    return rows, inputs


def _ragged_end(config: Config, spans: pd.DataFrame, underlyings: tuple[str, ...]) -> pd.Timestamp | None:
    """Scenario end capped at the last bar every live instrument has.

    Files end ragged (one symbol's last hour present, another's not): the cap is the
    earliest last bar among the symbol underlyings and, when the index is scanned, its
    constituents still trading within a day of the file's end (delisted ones exit the
    index normally and do not count).
    """
    ends = [spans.loc[u, "last"] for u in underlyings if not is_index(u)]
    if any(is_index(u) for u in underlyings):
        from backtest.index import DEFAULT_AI_BASKET

        basket = config.index.constituents or DEFAULT_AI_BASKET
        latest = spans["last"].max()
        ends += [spans.loc[c, "last"] for c in basket if c in spans.index and spans.loc[c, "last"] >= latest - pd.Timedelta(days=1)]
    cap = min(ends) if ends else None
    end = config.scenario.end_ts
    if cap is None:
        return end
    return cap if end is None else min(cap, end)


@dataclass(frozen=True, eq=False)
class ScanRun:
    """What :func:`run_scan` found: the league table, the long table (every coin x underlying x
    rule), the coins skipped with the reason, and every file read (for ``scan.json``)."""

    table: pd.DataFrame
    long: pd.DataFrame
    skipped: list[dict[str, str]]
    inputs: tuple[InputFile, ...]


def run_scan(config: Config, spec: ScanSpec, *, progress: bool = False) -> ScanRun:
    """Scan the coins: the league table (one row per coin), the long table, the skipped coins and
    the files read (:class:`ScanRun`).

    League-table columns: ``rank``, ``coin``, ``start``, ``end``, ``days``, then per
    underlying ``u``: ``oracle_r2_u``, ``he_daily_u`` and ``cost_bps_u`` (of the best rule
    on ``u``) and ``rule_u``; then ``best_underlying``, ``best_rule``, ``best_he_daily``.
    Ranked by ``best_he_daily`` (1 = most hedgeable).
    """
    from backtest.multi_run import refuse_multi

    refuse_multi(config, "scan")
    spans = coin_spans(config).set_index("symbol")
    known = set(spans.index)
    for u in spec.underlyings:
        if not is_index(u) and u not in known:
            raise ConfigError("--underlyings", f"unknown symbol '{u}'; available: {', '.join(sorted(known))}")
    coins = spec.coins or tuple(s for s in spans.index if s not in spec.underlyings)
    lo_cfg, hi_cfg = config.scenario.start_ts, _ragged_end(config, spans, spec.underlyings)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    inputs: list[InputFile] = []
    from tqdm import tqdm

    for coin in tqdm(coins, desc="coins", unit="coin", disable=not progress):
        if coin not in known:
            raise ConfigError("--coins", f"unknown symbol '{coin}'; available: {', '.join(sorted(known))}")
        start = max(spans.loc[coin, "first"], lo_cfg) if lo_cfg is not None else spans.loc[coin, "first"]
        end = min(spans.loc[coin, "last"], hi_cfg) if hi_cfg is not None else spans.loc[coin, "last"]
        days = (end - start) / pd.Timedelta(days=1)
        if days < spec.min_history_days:
            skipped.append({"coin": coin, "reason": f"{max(days, 0):.0f} days of data in the window < {spec.min_history_days:g}"})
            continue
        try:
            coin_rows, coin_inputs = _scan_coin(config, spec, coin, start, end)
        except (DataError, ConfigError) as exc:
            skipped.append({"coin": coin, "reason": " ".join(str(exc).split())})
            continue
        rows.extend(coin_rows)
        inputs.extend(coin_inputs)
    if not rows:
        reasons = "; ".join(f"{s['coin']}: {s['reason']}" for s in skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        raise ConfigError("--coins", f"no coin left to scan ({reasons})")
    long = pd.DataFrame(rows)
    return ScanRun(_league(long, spec), long, skipped, tuple(inputs))


def _league(long: pd.DataFrame, spec: ScanSpec) -> pd.DataFrame:
    if long.empty:
        return pd.DataFrame(columns=["rank", "coin", "start", "end", "days", "best_underlying", "best_rule", "best_he_daily"])
    out = []
    for coin, g in long.groupby("coin", sort=True):
        row: dict[str, Any] = {"coin": coin, "start": g["start"].max(), "end": g["end"].min(), "days": float(g["days"].min())}
        best = g.loc[g["he_daily"].fillna(-np.inf).idxmax()]
        for u in spec.underlyings:
            gu = g[g["underlying"] == u]
            b = gu.loc[gu["he_daily"].fillna(-np.inf).idxmax()]
            row[f"oracle_r2_{u}"] = float(b["oracle_r2"])
            row[f"he_daily_{u}"] = float(b["he_daily"])
            row[f"cost_bps_{u}"] = float(b["cost_drag_bps_per_year"]) + 0.0  # + 0.0: no "-0" in scan.csv
            row[f"rule_{u}"] = b["rule"] if np.isfinite(b["he_daily"]) else ""
        if np.isfinite(best["he_daily"]):
            row.update(best_underlying=best["underlying"], best_rule=best["rule"], best_he_daily=float(best["he_daily"]))
        else:  # nothing measurable: no best to name
            row.update(best_underlying="", best_rule="", best_he_daily=math.nan)
        out.append(row)
    table = pd.DataFrame(out).sort_values(["best_he_daily", "coin"], ascending=[False, True], na_position="last")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def scan_info(config: Config, spec: ScanSpec, scan: ScanRun, config_file: str) -> dict[str, Any]:
    """Facts about a scan for ``scan.json``: its settings (the coins asked for: ``[]`` for every
    coin), what was scanned and skipped, and :func:`backtest.engine.result_record`."""
    return {
        "config_file": config_file,
        "coins": list(spec.coins),
        "min_history_days": spec.min_history_days,
        "notional_usd": spec.notional_usd,
        "underlyings": list(spec.underlyings),
        "scanned": int(len(scan.table)),
        "skipped": scan.skipped,
        "he_definition": "1 - Var(daily hedged P&L) / Var(daily unhedged P&L), non-overlapping UTC-day sums",
        **result_record(config, scan.inputs),
    }


def write_scan_tables(table: pd.DataFrame, long: pd.DataFrame, info: dict[str, Any], folder: Path) -> None:
    """``scan.csv`` (the league table), ``scan_long.csv`` (every coin x underlying x rule) and ``scan.json``."""
    from backtest.atomic import write_text

    write_text(folder / "scan.csv", table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    write_text(folder / "scan_long.csv", long.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    write_text(folder / "scan.json", json.dumps(info, indent=2, allow_nan=False) + "\n")
