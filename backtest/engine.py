"""Run a scenario: data -> index -> futures leg -> hedge rules -> kernel -> result.

This is the pandas edge around the array kernel. :func:`prepare` loads and
aligns everything a replay needs into a :class:`Prepared` bundle (market
arrays plus labels); :func:`run` simulates every configured rule on it and
returns an immutable :class:`~backtest.results.RunResult`. Nothing here
re-implements accounting: all of it lives in :mod:`backtest.kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from backtest import contracts as C
from backtest.config import Config
from backtest.data import GapReport, file_sha256, load_funding, load_panel
from backtest.errors import ConfigError, DataError
from backtest.index import DEFAULT_AI_BASKET, IndexResult, IndexSpec, build_index, read_market_caps
from backtest import kernels as K
from backtest.market import Market, Variant, run_variants
from strategies.rules import HedgeRule, make_rule, oracle_r2

__all__ = ["Prepared", "PrepareNotes", "FundingNotes", "InputFile", "prepare", "variant_for", "rule_objects",
           "coin_and_futures_returns", "min_safe_collateral",
           "min_safe_collaterals", "MIN_SAFE_COLLATERAL_LABEL", "MIN_SAFE_TOL_USD"]

_OHLC_DEFAULT = {"1h": "binance_spot_1h_ohlcv_2021_2023.parquet", "1D": "binance_spot_1d_ohlcv_2021_2023.parquet"}


@dataclass(frozen=True)
class InputFile:
    """A file a replay read, with its role and content hash."""

    role: str
    path: str
    sha256: str


@dataclass(frozen=True)
class FundingNotes:
    """Funding facts of a perpetual replay (for the summary and report)."""

    source: str
    is_proxy: bool
    symbol: str | None
    funding_times: int
    filled: int


@dataclass(frozen=True)
class PrepareNotes:
    """Facts about the prepared inputs that the summary reports.

    Attributes
    ----------
    oracle_r2 : float
        In-sample squared correlation of coin and futures returns.
    gaps : tuple of GapReport
        Symbols with forward-filled gaps.
    intrabar_high_share : float
        Share of bars with a known intrabar index high.
    impact : str
        ``"on"`` or ``"off (no volume)"``.
    funding : FundingNotes or None
        Perpetuals only.
    not_listed : tuple of str
        Index constituents left out because their data starts after ``scenario.end``.
    """

    oracle_r2: float
    gaps: tuple[GapReport, ...]
    intrabar_high_share: float
    impact: str
    funding: FundingNotes | None
    not_listed: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Prepared:
    """Everything aligned for the kernel, plus labels for the ledger and report.

    Attributes
    ----------
    market : Market
        Kernel arrays; ``market.hr`` has one column per rule in ``rule_labels``.
    ts : DatetimeIndex
        Bar open times of the replay.
    bar : Timedelta
    coins : tuple of str
    coin_prices : ndarray, shape (T, n_coins)
    coin_units : ndarray, shape (T, n_coins)
    book : ContractBook
    schedule : RollSchedule
    index : IndexResult
    rules : tuple of HedgeRule
    rule_labels : tuple of str
    inputs : tuple of InputFile
    notes : PrepareNotes
        Facts for the summary (gaps, funding fills, intrabar coverage, ...).
    """

    market: Market
    ts: pd.DatetimeIndex
    bar: pd.Timedelta
    coins: tuple[str, ...]
    coin_prices: np.ndarray
    coin_units: np.ndarray
    book: C.ContractBook
    schedule: C.RollSchedule
    index: IndexResult
    rules: tuple[HedgeRule, ...]
    rule_labels: tuple[str, ...]
    inputs: tuple[InputFile, ...]
    notes: PrepareNotes

    @property
    def bars_per_day(self) -> float:
        return pd.Timedelta(days=1) / self.bar


def _constituents(config: Config) -> tuple[str, ...]:
    if config.index.constituents:
        chosen = config.index.constituents
    else:
        chosen = DEFAULT_AI_BASKET
    if not config.index.include_hedged_coins:
        chosen = tuple(s for s in chosen if s not in config.position.coins)
    if not chosen:
        raise ConfigError("index.constituents", "no constituent left after excluding the hedged coins")
    return chosen


@dataclass(frozen=True, eq=False)
class _Prices:
    """Closes of every requested symbol on one grid, possibly read from several files."""

    close: pd.DataFrame
    freq: pd.Timedelta
    gaps: tuple[GapReport, ...]
    files: tuple[InputFile, ...]
    label: str  # the file name(s), for messages
    not_listed: tuple[str, ...] = ()  # constituents whose data starts after scenario.end


def _first_bars(path: Path) -> dict[str, pd.Timestamp]:
    """First bar per symbol, read from the ``ts``/``symbol`` columns only (no validation:
    :func:`backtest.data.load_panel` validates what is then loaded)."""
    try:
        cols = pd.read_parquet(path, columns=["ts", "symbol"])
        return {str(k): v for k, v in cols.groupby(cols["symbol"].astype(str))["ts"].min().items()}
    except Exception:  # noqa: BLE001 - a bad file is reported by load_panel with file/column/row
        return {}


def _load_prices(config: Config, symbols: tuple[str, ...], optional: frozenset[str]) -> _Prices:
    """Load the symbols' closes; with several files each symbol must be in exactly one of them.

    Symbols in ``optional`` (index constituents) whose data starts after ``scenario.end``
    are left out (they could never enter the index) and listed in ``_Prices.not_listed``.
    """
    names = (config.data.prices,) if isinstance(config.data.prices, str) else tuple(config.data.prices)
    paths = [config.resolve(n) for n in names]
    resample = "1D" if config.scenario.bar == "1D" else None
    end = config.scenario.end_ts
    owner: dict[str, Path] = {}
    first: dict[str, pd.Timestamp] = {}
    # the first-bar scan is needed only to drop late constituents or to find each symbol's file
    scan = paths if (end is not None and optional) or len(paths) > 1 else []
    for path in scan:
        for sym, ts in _first_bars(path).items():
            if sym not in symbols:
                continue
            if sym in owner and len(paths) > 1:
                raise DataError(path, f"symbol '{sym}' is also in {owner[sym].name}; each symbol must come from one file", column="symbol")
            owner[sym], first[sym] = path, ts
    late = tuple(s for s in symbols if s in optional and end is not None and s in first and first[s] > end)
    symbols = tuple(s for s in symbols if s not in late)
    if len(paths) == 1:
        panel = load_panel(paths[0], list(symbols), end=end, resample=resample, max_fill_bars=config.data.max_fill_bars)
        files = (InputFile("prices", str(panel.path), panel.sha256),)
        return _Prices(panel.close, panel.freq, panel.gaps, files, str(panel.path), late)
    missing = [s for s in symbols if s not in owner]
    if missing:
        raise DataError(", ".join(p.name for p in paths), f"unknown symbol '{missing[0]}' (in none of data.prices)", column="symbol")
    panels = [
        load_panel(path, [s for s in symbols if owner[s] == path], end=end, resample=resample,
                   max_fill_bars=config.data.max_fill_bars)
        for path in paths
        if any(owner[s] == path for s in symbols)
    ]
    freqs = {p.freq for p in panels}
    if len(freqs) > 1:
        raise DataError(", ".join(p.path.name for p in panels), f"the price files have different bar lengths {sorted(map(str, freqs))}; use scenario.bar = '1D' to align them")
    freq = freqs.pop()
    start = min(p.close.index[0] for p in panels)
    stop = max(p.close.index[-1] for p in panels)
    grid = pd.date_range(start, stop, freq=freq, name="ts")
    close = pd.concat([p.close.reindex(grid) for p in panels], axis=1)[list(symbols)]
    files = tuple(InputFile("prices", str(p.path), p.sha256) for p in panels)
    return _Prices(close, freq, tuple(g for p in panels for g in p.gaps), files, ", ".join(p.path.name for p in panels), late)


def _load_highs(config: Config, close: pd.DataFrame, symbols: tuple[str, ...]) -> tuple[pd.DataFrame | None, InputFile | None]:
    name = config.data.ohlc if config.data.ohlc is not None else _OHLC_DEFAULT[config.scenario.bar]
    if name == "":
        return None, None
    path = config.resolve(name)
    if not path.exists():
        if config.data.ohlc is not None:
            raise DataError(path, "OHLC file named in data.ohlc does not exist")
        return None, None
    from backtest.data import read_long

    available = sorted(set(read_long(path)["symbol"].astype(str).unique()) & set(symbols))
    if not available:
        return None, InputFile("ohlc", str(path), file_sha256(path))
    panel = load_panel(path, available, end=config.scenario.end_ts, max_fill_bars=config.data.max_fill_bars)
    if panel.high is None:
        return None, InputFile("ohlc", str(path), file_sha256(path))
    high = panel.high.reindex(index=close.index, columns=list(symbols))
    # a high below the close file's close is inconsistent between files: use the close there
    high = high.where(~(high < close[list(symbols)]), close[list(symbols)])
    return high, InputFile("ohlc", str(path), file_sha256(path))


def _holdings(config: Config, ts: pd.DatetimeIndex, prices: np.ndarray) -> tuple[np.ndarray, InputFile | None]:
    """Units per coin and bar, shape (T, n_coins)."""
    pos = config.position
    T = len(ts)
    if pos.kind == "units":
        return np.tile(np.asarray(pos.units, dtype=float), (T, 1)), None
    if pos.kind == "notional":
        every = config.rebalance.every_bars
        reset = np.arange(T) - np.arange(T) % every  # last reset bar at or before t
        return np.asarray(pos.notional_usd, dtype=float)[None, :] / prices[reset], None
    assert pos.holdings_file is not None
    path = config.resolve(pos.holdings_file)
    if not path.exists():
        raise DataError(path, "holdings file not found (position.holdings_file)")
    try:
        raw = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise DataError(path, f"cannot read holdings file: {exc}") from None
    for col in ("ts", "symbol", "units"):
        if col not in raw.columns:
            raise DataError(path, "missing required column", column=col)
    stamps = pd.to_datetime(raw["ts"], utc=False, errors="coerce")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        raise DataError(path, f"unparseable timestamp {raw['ts'].iloc[bad[0]]!r}", column="ts", row=int(bad[0]))
    if stamps.dt.tz is None:
        if path.suffix.lower() != ".csv" or not raw["ts"].astype(str).str.contains(r"(Z|[+-]\d\d:?\d\d)$").all():
            raise DataError(path, "timestamps must be tz-aware UTC (e.g. 2024-01-01T00:00:00Z)", column="ts", row=0)
    stamps = pd.to_datetime(raw["ts"], utc=True)
    units = pd.to_numeric(raw["units"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(units) | (units < 0))
    if bad.size:
        raise DataError(path, f"expected finite units >= 0, got {raw['units'].iloc[bad[0]]!r}", column="units", row=int(bad[0]))
    unknown = sorted(set(raw["symbol"].astype(str)) - set(config.position.coins))
    if unknown:
        raise DataError(path, f"unknown symbol '{unknown[0]}'; position.coins = {list(config.position.coins)}", column="symbol")
    frame = pd.DataFrame({"ts": stamps, "symbol": raw["symbol"].astype(str), "units": units})
    if frame.duplicated(["ts", "symbol"]).any():
        r = int(np.flatnonzero(frame.duplicated(["ts", "symbol"]).to_numpy())[0])
        raise DataError(path, "duplicate (ts, symbol) row", column="ts", row=r)
    wide = frame.pivot(index="ts", columns="symbol", values="units").sort_index()
    out = np.empty((T, len(config.position.coins)))
    for j, coin in enumerate(config.position.coins):
        if coin not in wide.columns:
            raise DataError(path, f"no holdings rows for coin '{coin}'", column="symbol")
        series = wide[coin].dropna()
        aligned = series.reindex(ts, method="ffill")
        if aligned.isna().any():
            first = ts[np.flatnonzero(aligned.isna().to_numpy())[0]]
            raise DataError(path, f"no holding of '{coin}' known at or before {first} (first replay bar)", column="ts")
        out[:, j] = aligned.to_numpy()
    return out, InputFile("holdings", str(path), file_sha256(path))


def coin_and_futures_returns(market: Market) -> tuple[np.ndarray, np.ndarray]:
    """Returns the rules estimate from: the coin holding's and the held contract's.

    ``coin_ret[t] = alt_pnl[t] / alt_value[t-1]``; ``fut_ret[t] = px[t, c0[t-1]] / px[t-1, c0[t-1]] - 1``
    (the same contract on both bars, so roll jumps are excluded). Both are NaN at t = 0.
    """
    T = market.n_bars
    coin = np.full(T, np.nan)
    fut = np.full(T, np.nan)
    coin[1:] = market.alt_pnl[1:] / market.alt_value[:-1]
    held = market.c0[:-1]
    t = np.arange(1, T)
    fut[1:] = market.px[t, held] / market.px[t - 1, held] - 1.0
    return coin, fut


def rule_objects(config: Config) -> tuple[tuple[HedgeRule, ...], tuple[str, ...]]:
    """Hedge rules of the config and their (unique) labels."""
    rules = []
    labels = []
    for i, spec in enumerate(config.rules):
        try:
            rule = make_rule(spec.family, **spec.kwargs())
        except ConfigError as exc:
            raise ConfigError(f"rules[{i}].{exc.key.rsplit('.', 1)[-1]}", str(exc).split(": ", 1)[-1]) from None
        label = spec.label or rule.name
        if label in labels:
            raise ConfigError(f"rules[{i}].label", f"duplicate rule label '{label}'; give each rule a distinct label")
        rules.append(rule)
        labels.append(label)
    return tuple(rules), tuple(labels)


def prepare(config: Config) -> Prepared:
    """Load, validate and align all inputs of a scenario (no simulation yet)."""
    rules, labels = rule_objects(config)  # fail fast on a bad rule, before loading data
    coins = config.position.coins
    constituents = _constituents(config)
    symbols = tuple(dict.fromkeys([*coins, *constituents]))
    panel = _load_prices(config, symbols, optional=frozenset(constituents) - set(coins))
    constituents = tuple(c for c in constituents if c not in panel.not_listed)
    inputs = list(panel.files)
    close = panel.close
    # the replay cannot outlive the hedged coins: drop bars after the first coin's last price
    last = min(close[c].last_valid_index() for c in coins)
    close = close.loc[:last]
    high, ohlc_input = _load_highs(config, close, constituents)
    if ohlc_input is not None:
        inputs.append(ohlc_input)

    spec = IndexSpec(
        constituents=constituents,
        weighting=config.index.weighting,
        rebalance=config.index.rebalance,
        min_history_days=config.index.min_history_days,
        max_weight=config.index.max_weight,
        vol_lookback_days=config.index.vol_lookback_days,
        min_constituents=min(config.index.min_constituents, len(constituents)),
    )
    caps = None
    if config.index.weighting == "market_cap":
        assert config.index.market_caps is not None
        caps_path = config.resolve(config.index.market_caps)
        caps = read_market_caps(caps_path, close=close[list(constituents)])
        inputs.append(InputFile("market_caps", str(caps_path), file_sha256(caps_path)))
    try:
        index = build_index(close[list(constituents)], spec, high=high, market_caps=caps)
    except DataError as exc:
        if exc.file != "<close>":
            raise
        raise DataError(panel.label, f"index: {exc.problem}", column=exc.column, row=exc.row) from None

    # replay window: config bounds, index start, every coin priced
    ts_all = close.index
    lo = index.start
    if config.scenario.start_ts is not None:
        lo = max(lo, config.scenario.start_ts)
    window = ts_all[ts_all >= lo]
    if config.scenario.end_ts is not None:
        window = window[window <= config.scenario.end_ts]
    level = index.level.reindex(window)
    window = window[level.notna().to_numpy()]
    if len(window) < 3:
        raise ConfigError("scenario.start", f"the replay window has {len(window)} bars with an index level; check start/end against the data period")
    coin_px = close.loc[window, list(coins)]
    for coin in coins:
        missing = coin_px[coin].isna().to_numpy()
        if missing.any():
            first = window[np.flatnonzero(missing)[0]]
            raise DataError(panel.label, f"coin '{coin}' has no price at {first}, inside the replay window; move scenario.start/end", column="close")
    ts = window
    T = len(ts)
    bar = panel.freq
    close_times = ts + bar
    prices = coin_px.to_numpy(dtype=float)
    units, holdings_input = _holdings(config, ts, prices)
    if holdings_input is not None:
        inputs.append(holdings_input)

    alt_value = (units * prices).sum(axis=1)
    if not (alt_value > 0).all():
        first = ts[np.flatnonzero(~(alt_value > 0))[0]]
        raise ConfigError("position", f"the coin holding is worth nothing at {first}; a hedge needs a positive holding")
    alt_pnl = np.zeros(T)
    alt_pnl[1:] = (units[:-1] * np.diff(prices, axis=0)).sum(axis=1)
    alt_flow = np.zeros(T)
    alt_flow[1:] = -(np.diff(units, axis=0) * prices[1:]).sum(axis=1)
    alt_changed = np.zeros(T, dtype=bool)
    alt_changed[1:] = (np.diff(units, axis=0) != 0).any(axis=1)

    idx = level.reindex(ts).to_numpy(dtype=float)
    idx_hi = index.high.reindex(ts).to_numpy(dtype=float)
    fut = config.futures
    funding_notes: FundingNotes | None = None
    if fut.kind == "perpetual":
        book = C.perpetual(idx, fut.premium)
        series = None
        label = "funding"
        if config.funding.source == "series":
            fpath = config.resolve(config.funding.series_file)
            series = load_funding(fpath, config.funding.series_symbol)
            inputs.append(InputFile("funding", str(fpath), file_sha256(fpath)))
            label = str(fpath)
        fund_rate, finfo = C.funding_per_bar(ts, bar, config.funding, premium=fut.premium, series=series, series_label=label)
        funding_notes = FundingNotes(
            source=config.funding.source,
            is_proxy=config.funding.source == "series",
            symbol=config.funding.series_symbol if config.funding.source == "series" else None,
            funding_times=finfo.funding_times,
            filled=finfo.filled,
        )
    else:
        if fut.price_file is not None:
            fpath = config.resolve(fut.price_file)
            book = C.quarterly_from_prices(close_times, idx, fpath)
            inputs.append(InputFile("futures_prices", str(fpath), file_sha256(fpath)))
        else:
            book = C.modelled_quarterly(close_times, idx, fut.basis_ann)
        fund_rate = np.zeros(T)
    schedule = C.roll_schedule(close_times, book, config.roll)
    if fut.price_file is not None and fut.kind == "quarterly":
        C.check_coverage(book, schedule, close_times)

    volume = np.full(T, config.slippage.volume_usd_per_bar)
    vm_bar = (close_times.hour == 0) & (close_times.minute == 0)
    base = Market(
        px=book.px, idx=idx, idx_hi=idx_hi, idx_lo=np.full(T, np.nan), c0=schedule.c0, c1=schedule.c1,
        w1=schedule.w1, exp_bar=book.exp_bar, fund_rate=fund_rate, volume_usd=volume, vm_bar=np.asarray(vm_bar),
        alt_value=alt_value, alt_pnl=alt_pnl, alt_flow=alt_flow, alt_changed=alt_changed,
        hr=np.zeros((T, 1)), contract_size=fut.contract_size,
    )
    coin_ret, fut_ret = coin_and_futures_returns(base)
    hr = np.column_stack([np.asarray(rule.hedge_ratio(coin_ret, fut_ret), dtype=float) for rule in rules])
    if not np.isfinite(hr).all():
        bad = int(np.flatnonzero(~np.isfinite(hr).all(axis=1))[0])
        raise ConfigError("rules", f"a rule returned a non-finite hedge ratio at {ts[bad]}")
    market = replace(base, hr=hr)

    notes = PrepareNotes(
        oracle_r2=oracle_r2(coin_ret, fut_ret),
        gaps=tuple(g for g in panel.gaps if g.n_gaps),
        intrabar_high_share=float(np.isfinite(idx_hi).mean()),
        impact="on" if config.slippage.volume_usd_per_bar > 0 and config.slippage.impact_coef > 0 else "off (no volume)",
        funding=funding_notes,
        not_listed=panel.not_listed,
    )
    return Prepared(
        market=market, ts=ts, bar=bar, coins=coins, coin_prices=prices, coin_units=units, book=book,
        schedule=schedule, index=index, rules=rules, rule_labels=labels, inputs=tuple(inputs), notes=notes,
    )


def variant_for(config: Config, hr_col: int, *, margin_enabled: bool | None = None) -> Variant:
    """The kernel parameters of rule column ``hr_col`` under the config's execution settings."""
    m = config.margin
    r = config.rebalance
    return Variant(
        hr_col=hr_col,
        fee_bps=config.fees.trade_bps,
        half_spread_bps=config.slippage.half_spread_bps,
        impact_coef=config.slippage.impact_coef,
        mode=r.mode,
        every_bars=r.every_bars,
        band=r.band,
        whole_contracts=r.whole_contracts,
        min_trade_contracts=r.min_trade_contracts,
        margin_enabled=m.enabled if margin_enabled is None else margin_enabled,
        initial_rate=m.initial_rate,
        maintenance_rate=m.maintenance_rate,
        collateral_usd=m.collateral_usd,
        reserve_usd=m.reserve_usd,
        policy=m.policy,
        liquidation_fee_bps=m.liquidation_fee_bps,
        settlement_fee_bps=config.fees.settlement_bps,
        daily_variation=m.variation == "daily",
    )


#: Label of ``min_safe_collateral`` wherever it is shown (summary, compare, PDF, README).
MIN_SAFE_COLLATERAL_LABEL = "smallest starting collateral with no margin call, no capped re-size, no liquidation, reserve 0"

#: Absolute tolerance of the bisection of :func:`min_safe_collaterals` (USD).
MIN_SAFE_TOL_USD = 1.0


def _margin_events(summaries: np.ndarray) -> np.ndarray:
    """True for summary rows with a margin call, a capped re-size or a liquidation."""
    cols = [K.SUM.index(name) for name in ("margin_calls", "liquidations", "margin_capped")]
    return (summaries[:, cols] > 0).any(axis=1)


def min_safe_collaterals(market: Market, variants: Sequence[Variant], *, tol_usd: float = MIN_SAFE_TOL_USD) -> np.ndarray:
    """Smallest starting collateral per variant for which the margin-on replay with reserve 0
    has no margin call, no capped re-size and no liquidation (USD, rounded up to whole dollars).

    Each variant is replayed with ``margin_enabled = True``, ``reserve_usd = 0`` and a trial
    ``collateral_usd = c``. The set of event-free ``c`` is ``[c*, inf)``: as long as no event
    happens, the trades, costs and futures cash flows do not depend on ``c`` (the margin
    wallet is ``c + flows_t``), and each event condition (``MB_adv < MM_adv`` at a bar's
    adverse intrabar price, ``IM(target) > MB`` at a re-size) is ``c < threshold_t - flows_t``;
    so a collateral above an event-free one is event-free too. ``c*`` is found by bisection
    to within ``tol_usd``, all variants of a step in one call of the parallel many-variant
    kernel: collateral 0 is tried first (event-free for a variant that never holds a hedge);
    the first trial upper bound is the margin-off maintenance need ``margin_need`` (below it
    the margin-on path breaches maintenance), doubled until event-free; then bisection.

    Returns
    -------
    ndarray, shape (n_variants,)
        ``ceil(c_hi)`` with ``c_hi`` event-free and ``c_hi - tol_usd`` (or less) not.
    """
    if not variants:
        return np.zeros(0)
    base = [replace(v, margin_enabled=True, reserve_usd=0.0) for v in variants]

    def events(cs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return _margin_events(run_variants(market, [replace(base[i], collateral_usd=float(c)) for i, c in zip(rows, cs)]))

    n = len(base)
    free = run_variants(market, [replace(v, margin_enabled=False, collateral_usd=0.0) for v in base])
    need = np.maximum(free[:, K.SUM.index("margin_need")], 0.0)
    lo = np.full(n, -1.0)  # largest collateral known to have an event (-1: none yet)
    hi = np.maximum(need, 1.0)
    all_rows = np.arange(n)
    zero_ok = ~events(np.zeros(n), all_rows)
    hi[zero_ok] = 0.0
    open_ = ~zero_ok
    lo[open_] = 0.0
    for _ in range(200):  # grow the upper bound
        rows = all_rows[open_]
        if rows.size == 0:
            break
        bad = events(hi[rows], rows)
        lo[rows[bad]] = hi[rows[bad]]
        hi[rows[bad]] *= 2.0
        open_[rows[~bad]] = False
    else:
        raise RuntimeError("min_safe_collaterals: no event-free collateral found")
    while True:
        rows = all_rows[(hi - lo > tol_usd) & ~zero_ok]
        if rows.size == 0:
            break
        mid = 0.5 * (lo[rows] + hi[rows])
        bad = events(mid, rows)
        lo[rows[bad]] = mid[bad]
        hi[rows[~bad]] = mid[~bad]
    return np.ceil(hi)


def min_safe_collateral(prepared: Prepared, variant: Variant) -> float:
    """:func:`min_safe_collaterals` of one variant (see there for the definition)."""
    return float(min_safe_collaterals(prepared.market, [variant])[0])
