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
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from backtest import contracts as C
from backtest.config import BUNDLED_DATA, Config, RuleSpec, config_to_dict
from backtest.data import GapReport, file_sha256, load_funding, load_panel
from backtest.errors import ConfigError, DataError
from backtest.index import (
    DEFAULT_AI_BASKET,
    TICKER_MIGRATIONS,
    IndexResult,
    IndexSpec,
    MigrationNote,
    TickerMigration,
    apply_migrations,
    build_index,
    load_snapshot_caps,
    migrate_caps,
    read_market_caps,
)
from backtest import kernels as K
from backtest.instrument import check_underlying, is_index, symbol_underlying
from backtest.market import Market, Variant, run_variants
from backtest.progress import Progress, report as report_progress
from backtest.versions import hedgebt_version, package_versions
from backtest.windows import bundled_events_file
from strategies.multi import is_multi
from strategies.rules import HedgeRule, make_rule, oracle_r2

__all__ = ["Prepared", "PrepareNotes", "FundingNotes", "InputFile", "events_input", "input_records", "result_record", "prepare", "prepare_single", "variant_for", "rule_objects",
           "check_ledger_rows", "MAX_LEDGER_ROWS",
           "coin_and_futures_returns", "holding_arrays",
           "min_safe_collaterals", "MIN_SAFE_COLLATERAL_LABEL", "MIN_SAFE_TOL_USD"]

#: default market caps: monthly CoinMarketCap snapshots (see data/PROVENANCE.md)
BUNDLED_MARKET_CAPS = BUNDLED_DATA / "cmc_monthly_snapshot_ai_tokens.parquet"

_OHLC_DEFAULT = {"1h": "binance_spot_1h_ohlcv_2021_2023.parquet", "1D": "binance_spot_1d_ohlcv_2021_2023.parquet"}


@dataclass(frozen=True)
class InputFile:
    """A file a replay read, with its role and content hash."""

    role: str
    path: str
    sha256: str


def events_input() -> InputFile:
    """The bundled event library as an input (read for the event table and the worst event)."""
    path = bundled_events_file()
    return InputFile("events", str(path), file_sha256(path))


def result_record(config: Config, inputs: Iterable[InputFile]) -> dict[str, Any]:
    """How a result was made, for its JSON record (``compare.json``, ``scan.json``,
    ``stress.json``): hedgebt's version, the resolved config, every file read with its SHA-256
    (:func:`input_records`) and the versions of the packages that shape results."""
    return {"hedgebt_version": hedgebt_version(), "config": config_to_dict(config), "inputs": input_records(inputs),
            "packages": package_versions()}


def input_records(files: Iterable[InputFile]) -> list[dict[str, str]]:
    """The ``inputs`` entry of a result's record: every file read, once, in the order first met,
    as ``{"role", "path" (the file name), "sha256"}``. Several scenarios reading one file (a
    grid, a scan) list it once per role."""
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for f in files:
        rec = {"role": f.role, "path": Path(f.path).name, "sha256": f.sha256}
        out.setdefault((rec["role"], rec["path"], rec["sha256"]), rec)
    return list(out.values())


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
    basis : BasisInfo or None
        The basis of modelled dated futures (constant or series proxy); None otherwise.
    migrations : tuple of MigrationNote
        Ticker migrations joined into one series (``index.migrations``).
    """

    oracle_r2: float
    gaps: tuple[GapReport, ...]
    intrabar_high_share: float
    impact: str
    funding: FundingNotes | None
    not_listed: tuple[str, ...] = ()
    basis: C.BasisInfo | None = None
    migrations: tuple[MigrationNote, ...] = ()


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
    legs : tuple of (str, Prepared)
        With a ``multi_min_variance`` rule: every underlying its legs need (and the config's
        own), each prepared on this replay's bars (:func:`_prepare_with_legs`);
        empty otherwise.
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
    legs: tuple[tuple[str, "Prepared"], ...] = ()

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
    from backtest.data import holdings_times, holdings_units

    stamps = holdings_times(raw["ts"], path)
    units = holdings_units(raw["units"], path)
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
    fut[1:] = market.contract_price(t, held) / market.contract_price(t - 1, held) - 1.0
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


@dataclass(frozen=True, eq=False)
class _Closes:
    """The price stage's output: closes on one grid (extra files and migrations joined)."""

    close: pd.DataFrame
    panel: _Prices
    constituents: tuple[str, ...]
    migrations: tuple[TickerMigration, ...]
    migration_notes: tuple[MigrationNote, ...]
    gappy: tuple[str, ...]


def _price_stage(config: Config, inputs: list[InputFile]) -> _Closes:
    """Load the coins', the constituents' (or the underlying symbol's) and the old tickers' closes.

    The replay cannot outlive the hedged coins: bars after the first coin's last price are dropped.
    """
    coins = config.position.coins
    underlying = config.futures.underlying
    if is_index(underlying):
        constituents = _constituents(config)
        migrations = _active_migrations(config, coins, (*coins, *constituents))
    else:  # futures on one symbol: no index, [index] ignored
        names = (config.data.prices,) if isinstance(config.data.prices, str) else tuple(config.data.prices)
        check_underlying(underlying, [config.resolve(n) for n in names])
        constituents, migrations = (underlying,), ()
    old_tickers = tuple(m.old for m in migrations)
    symbols = tuple(dict.fromkeys([*coins, *constituents, *old_tickers]))
    optional = frozenset([*constituents, *old_tickers]) - set(coins) if is_index(underlying) else frozenset()
    panel = _load_prices(config, symbols, optional=optional)
    inputs.extend(panel.files)
    close, gappy, migration_notes = _join_prices(config, panel.close, migrations, inputs)
    constituents = _migrated_constituents(constituents, migrations, close)
    panel = replace(panel, not_listed=tuple(s for s in panel.not_listed if s not in close.columns))
    last = min(close[c].last_valid_index() for c in coins)
    if config.scenario.end is None:
        # no end given: the last bar where every needed series still has data (the underlying
        # symbol, or at least one index constituent), not a bar past the data
        ends = [close[c].last_valid_index() for c in constituents if c in close and close[c].notna().any()]
        if ends:
            last = min(last, min(ends) if not is_index(underlying) else max(ends))
    return _Closes(close.loc[:last], panel, constituents, migrations, migration_notes, gappy)


def _index_stage(config: Config, prices: _Closes, inputs: list[InputFile]) -> IndexResult:
    """The futures' underlying level: the AI index of ``[index]``, or one symbol's close."""
    close, constituents = prices.close, prices.constituents
    high, ohlc_input = _migrated_highs(config, close, constituents, prices.migrations)
    if ohlc_input is not None:
        inputs.append(ohlc_input)
    underlying = config.futures.underlying
    if not is_index(underlying):
        return symbol_underlying(close[underlying], None if high is None else high[underlying], underlying)
    spec = IndexSpec(
        constituents=constituents,
        weighting=config.index.weighting,
        rebalance=config.index.rebalance,
        min_history_days=config.index.min_history_days,
        max_weight=config.index.max_weight,
        vol_lookback_days=config.index.vol_lookback_days,
        min_constituents=min(config.index.min_constituents, len(constituents)),
        cap_max_missing=config.index.market_caps_max_missing if config.index.weighting == "market_cap" else None,
    )
    caps = _market_caps(config, close[list(constituents)], prices.migrations, inputs)
    try:
        index = build_index(close[list(constituents)], spec, high=high, market_caps=caps,
                            gaps_allowed=tuple(g for g in prices.gappy if g in constituents))
    except DataError as exc:
        if exc.file != "<close>":
            raise
        raise DataError(prices.panel.label, f"index: {exc.problem}", column=exc.column, row=exc.row) from None
    if config.index.start_at_price:
        index = _start_at_price(index, close[list(constituents)])
    return index


def _coverage(close: pd.DataFrame, symbols: Sequence[str]) -> str:
    """``SYM first..last`` of each symbol's priced bars, for messages about the replay window."""
    parts = []
    for s in symbols:
        col = close[s]
        first, last = col.first_valid_index(), col.last_valid_index()
        parts.append(f"{s} {'no data' if first is None else f'{first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M}'}")
    return ", ".join(parts)


def _window_stage(config: Config, prices: _Closes, index: IndexResult) -> pd.DatetimeIndex:
    """The replay's bars: inside ``[scenario]`` start/end, from the index start, with an index level
    and a price of every coin. A window that cannot be met names each series' coverage."""
    close, coins = prices.close, config.position.coins
    ts_all = close.index
    lo = index.start
    if config.scenario.start_ts is not None:
        lo = max(lo, config.scenario.start_ts)
    window = ts_all[ts_all >= lo]
    if config.scenario.end_ts is not None:
        window = window[window <= config.scenario.end_ts]
    window = window[index.level.reindex(window).notna().to_numpy()]
    if len(window) < 3:
        level = index.level.dropna()
        span = "never" if level.empty else f"{level.index[0]:%Y-%m-%d %H:%M}..{level.index[-1]:%Y-%m-%d %H:%M}"
        raise ConfigError(
            "scenario.start",
            f"the replay window has {len(window)} bars with an index level (index level: {span}; coins: "
            f"{_coverage(close, coins)}); choose start/end inside all of these",
        )
    coin_px = close.loc[window, list(coins)]
    for coin in coins:
        missing = coin_px[coin].isna().to_numpy()
        if missing.any():
            first = window[np.flatnonzero(missing)[0]]
            raise DataError(prices.panel.label, f"coin '{coin}' has no price at {first}, inside the replay window "
                            f"({_coverage(close, [coin])}); move scenario.start/end", column="close")
    return window


@dataclass(frozen=True, eq=False)
class _Holding:
    """The coin leg on the replay bars."""

    prices: np.ndarray
    units: np.ndarray
    alt_value: np.ndarray
    alt_pnl: np.ndarray
    alt_flow: np.ndarray
    alt_changed: np.ndarray


def _holding_stage(config: Config, ts: pd.DatetimeIndex, close: pd.DataFrame, inputs: list[InputFile]) -> _Holding:
    """Units, value and P&L of the coin holding per bar (``alt_pnl[t] = Σ units[t-1]·ΔP[t]``)."""
    prices = close.loc[ts, list(config.position.coins)].to_numpy(dtype=float)
    units, holdings_input = _holdings(config, ts, prices)
    if holdings_input is not None:
        inputs.append(holdings_input)
    holding = holding_arrays(units, prices)
    if not (holding.alt_value > 0).all():
        first = ts[np.flatnonzero(~(holding.alt_value > 0))[0]]
        raise ConfigError("position", f"the coin holding is worth nothing at {first}; a hedge needs a positive holding")
    return holding


def holding_arrays(units: np.ndarray, prices: np.ndarray) -> _Holding:
    """The coin leg of ``units`` held at ``prices`` (both shape (T, n_coins)).

    ``alt_value[t] = Σ units[t]·P[t]``; ``alt_pnl[t] = Σ units[t-1]·(P[t] − P[t-1])``;
    ``alt_flow[t] = −Σ (units[t] − units[t-1])·P[t]`` (cash paid for a change of holding);
    ``alt_changed[t]`` = the holding changed at ``t``. Bar 0 has no P&L, flow or change.
    """
    T = len(prices)
    alt_value = (units * prices).sum(axis=1)
    alt_pnl = np.zeros(T)
    alt_pnl[1:] = (units[:-1] * np.diff(prices, axis=0)).sum(axis=1)
    alt_flow = np.zeros(T)
    alt_flow[1:] = -(np.diff(units, axis=0) * prices[1:]).sum(axis=1)
    alt_changed = np.zeros(T, dtype=bool)
    alt_changed[1:] = (np.diff(units, axis=0) != 0).any(axis=1)
    return _Holding(prices, units, alt_value, alt_pnl, alt_flow, alt_changed)


@dataclass(frozen=True, eq=False)
class _Instrument:
    """The futures leg: contracts, their roll schedule and funding per bar."""

    book: C.ContractBook
    schedule: C.RollSchedule
    fund_rate: np.ndarray
    funding: FundingNotes | None
    basis: C.BasisInfo | None


def _instrument_stage(config: Config, ts: pd.DatetimeIndex, bar: pd.Timedelta, idx: np.ndarray,
                      inputs: list[InputFile]) -> _Instrument:
    """Perpetual (mark, funding) or dated contracts (modelled or from a file) and the roll schedule."""
    fut = config.futures
    close_times = ts + bar
    funding_notes: FundingNotes | None = None
    basis_info: C.BasisInfo | None = None
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
            book = C.quarterly_from_prices(close_times, idx, fpath, settle_at_index=fut.settle_at == "index")
            inputs.append(InputFile("futures_prices", str(fpath), file_sha256(fpath)))
        else:
            book, basis_info = _modelled_book(config, close_times, idx, inputs)
        fund_rate = np.zeros(len(ts))
    schedule = C.roll_schedule(close_times, book, config.roll)
    if fut.price_file is not None and fut.kind == "quarterly":
        C.check_coverage(book, schedule, close_times)
    return _Instrument(book, schedule, fund_rate, funding_notes, basis_info)


def _market_stage(config: Config, ts: pd.DatetimeIndex, bar: pd.Timedelta, idx: np.ndarray, idx_hi: np.ndarray,
                  coin: _Holding, leg: _Instrument, rules: tuple[HedgeRule, ...]) -> tuple[Market, float]:
    """The kernel's arrays, with one hedge-ratio column per rule (each rule sees past returns only),
    and the in-sample oracle ρ² of coin and futures returns."""
    T = len(ts)
    close_times = ts + bar
    base = Market(
        px=C.slot_prices(leg.book, leg.schedule), idx=idx, idx_hi=idx_hi, idx_lo=np.full(T, np.nan),
        c0=leg.schedule.c0, c1=leg.schedule.c1,
        w1=leg.schedule.w1, exp_bar=leg.book.exp_bar, fund_rate=leg.fund_rate,
        volume_usd=np.full(T, config.slippage.volume_usd_per_bar),
        vm_bar=np.asarray((close_times.hour == 0) & (close_times.minute == 0)),
        alt_value=coin.alt_value, alt_pnl=coin.alt_pnl, alt_flow=coin.alt_flow, alt_changed=coin.alt_changed,
        hr=np.zeros((T, 1)), contract_size=config.futures.contract_size,
    )
    coin_ret, fut_ret = coin_and_futures_returns(base)
    hr = np.column_stack([np.zeros(T) if is_multi(rule) else np.asarray(rule.hedge_ratio(coin_ret, fut_ret), dtype=float)
                          for rule in rules])
    if not np.isfinite(hr).all():
        bad = int(np.flatnonzero(~np.isfinite(hr).all(axis=1))[0])
        raise ConfigError("rules", f"a rule returned a non-finite hedge ratio at {ts[bad]}")
    return replace(base, hr=hr), oracle_r2(coin_ret, fut_ret)


def release_arrow_memory() -> None:
    """Return pyarrow's freed buffers (Parquet reads and writes) to the operating system.

    pyarrow's allocator keeps freed memory for reuse by pyarrow only; after reading a
    2,000,000-bar price file that is ~0.7 GB of resident memory nothing else can use.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


#: Most per-bar ledger rows (rules x bars) a run keeps: 2,000,000 rows peak at about 1.6 GB
#: (one rule on 2,000,000 bars; 52 rules on 38,232 hourly bars: 1.3 GB; ``benchmarks/memory.py``).
MAX_LEDGER_ROWS = 2_000_000


def check_ledger_rows(n_rules: int, n_bars: int) -> None:
    """Refuse a run whose per-bar ledger (``n_rules * n_bars`` rows) would exceed :data:`MAX_LEDGER_ROWS`.

    Raises
    ------
    ConfigError
        Key ``rules``: the count, the limit and what to do instead (``hedgebt compare`` ranks any
        number of variants from their summaries, without a per-bar ledger).
    """
    rows = n_rules * n_bars
    if rows > MAX_LEDGER_ROWS:
        raise ConfigError(
            "rules",
            f"{n_rules:,} rules x {n_bars:,} bars = {rows:,} per-bar ledger rows, above the "
            f"{MAX_LEDGER_ROWS:,} a run keeps (memory under 2 GB); rank many variants with "
            "`hedgebt compare` (summaries only, no per-bar ledger), or run fewer rules or a shorter "
            "scenario.start/end",
        )


def prepare(config: Config, *, ledger: bool = False) -> Prepared:
    """Load, validate and align all inputs of a scenario (no simulation yet).

    A short sequence of stages, each reading its own part of the config: rules (first, so a
    bad rule fails before any data is read) → prices → index (or the underlying symbol) →
    replay window → coin holding → futures instrument → kernel market. ``inputs`` collects
    every file read, with its hash, for the summary. ``ledger=True`` (a run that keeps the
    per-bar ledger of every rule) applies :func:`check_ledger_rows` as soon as the bars are
    known, before the hedge ratios are estimated.
    """
    rules, labels = rule_objects(config)
    if any(is_multi(rule) for rule in rules):
        return _prepare_with_legs(config, rules, labels, ledger=ledger)
    return prepare_single(config, rules, labels, ledger=ledger)


def _leg_config(config: Config, underlying: str) -> Config:
    """``config`` with futures on ``underlying`` and no rule of its own (a leg's market only)."""
    return replace(config, futures=replace(config.futures, underlying=underlying), rules=(RuleSpec("none"),))


def _leg_underlyings(config: Config, rules: Sequence[HedgeRule]) -> tuple[str, ...]:
    """The underlyings a run with ``multi_min_variance`` rules needs (the config's own first);
    unknown symbols name ``rules[i].instruments``."""
    names = (config.data.prices,) if isinstance(config.data.prices, str) else tuple(config.data.prices)
    paths = [config.resolve(n) for n in names]
    needed = [config.futures.underlying]
    for i, rule in enumerate(rules):
        if not is_multi(rule):
            continue
        for u in rule.instruments:  # type: ignore[attr-defined]
            try:
                check_underlying(u, paths)
            except ConfigError as exc:
                raise ConfigError(f"rules[{i}].instruments", str(exc).split(": ", 1)[-1]) from None
            needed.append(u)
    return tuple(dict.fromkeys(needed))


def _narrowed(config: Config, ts: pd.DatetimeIndex) -> Config:
    return replace(config, scenario=replace(config.scenario, start=ts[0].isoformat(), end=ts[-1].isoformat()))


def _prepare_with_legs(config: Config, rules: tuple[HedgeRule, ...], labels: tuple[str, ...], *,
                       ledger: bool = False) -> Prepared:
    """:func:`prepare` for a config with ``multi_min_variance`` rules (replayed by :mod:`backtest.multi_run`).

    The config's own underlying is prepared first; every other underlying the rules' legs need
    is prepared inside its window (:func:`prepare_single` with ``futures.underlying`` replaced
    and ``scenario.start`` / ``end`` narrowed to those bars, as the ``compare`` ``underlyings``
    axis does). The replay keeps the bars all of them share: when they differ, every market is
    prepared again with start / end narrowed to the shared span. The result is the config's own
    replay with ``legs`` = ``((underlying, Prepared), ...)`` on the same bars.

    Raises
    ------
    ConfigError
        ``rules[i].instruments``: a symbol in no price file.
    DataError
        The underlyings' bars differ inside the shared span (gaps in one of them).
    """
    needed = _leg_underlyings(config, rules)
    own = config.futures.underlying

    def markets(cfg: Config) -> dict[str, Prepared]:
        main = prepare_single(cfg, rules, labels, ledger=ledger)
        inside = _narrowed(cfg, main.ts)  # the other underlyings inside the config's own window
        return {u: main if u == own else prepare_single(_leg_config(inside, u), (make_rule("none"),), ("none",))
                for u in needed}

    legs = markets(config)
    common = legs[own].ts
    for p in legs.values():
        common = common.intersection(p.ts)
    if len(common) < 3:
        spans = ", ".join(f"{u} {p.ts[0]:%Y-%m-%d %H:%M}..{p.ts[-1]:%Y-%m-%d %H:%M}" for u, p in legs.items())
        raise ConfigError("scenario.start", f"the instruments' replay windows share {len(common)} bars ({spans}); "
                                            "choose start/end inside all of them")
    if any(not p.ts.equals(common) for p in legs.values()):
        legs = markets(_narrowed(config, common))
        main = legs[own]
        for u, p in legs.items():
            if not p.ts.equals(main.ts):
                raise DataError(u, f"the bars of futures on '{u}' differ from those of '{own}' inside "
                                   f"{main.ts[0]}..{main.ts[-1]} (a gap in one of them); a two-instrument hedge "
                                   "needs the same bars for every leg", column="ts")
    return replace(legs[own], legs=tuple((u, legs[u]) for u in needed))


def prepare_single(config: Config, rules: tuple[HedgeRule, ...], labels: tuple[str, ...], *,
                   ledger: bool = False) -> Prepared:
    """:func:`prepare` for futures on the config's one underlying (``multi_min_variance`` rules get
    a placeholder hedge-ratio column of zeros: :mod:`backtest.multi_run` replays them)."""
    inputs: list[InputFile] = []
    prices = _price_stage(config, inputs)
    index = _index_stage(config, prices, inputs)
    release_arrow_memory()  # the Parquet reads' buffers are free now; give them back
    ts = _window_stage(config, prices, index)
    if ledger:
        check_ledger_rows(len(rules), len(ts))
    bar = prices.panel.freq
    coin = _holding_stage(config, ts, prices.close, inputs)
    idx = index.level.reindex(ts).to_numpy(dtype=float)
    idx_hi = index.high.reindex(ts).to_numpy(dtype=float)
    leg = _instrument_stage(config, ts, bar, idx, inputs)
    market, oracle = _market_stage(config, ts, bar, idx, idx_hi, coin, leg, rules)
    notes = PrepareNotes(
        oracle_r2=oracle,
        gaps=tuple(g for g in prices.panel.gaps if g.n_gaps),
        intrabar_high_share=float(np.isfinite(idx_hi).mean()),
        impact="on" if config.slippage.volume_usd_per_bar > 0 and config.slippage.impact_coef > 0 else "off (no volume)",
        funding=leg.funding,
        not_listed=prices.panel.not_listed,
        basis=leg.basis,
        migrations=prices.migration_notes,
    )
    return Prepared(
        market=market, ts=ts, bar=bar, coins=config.position.coins, coin_prices=coin.prices, coin_units=coin.units,
        book=leg.book, schedule=leg.schedule, index=index, rules=rules, rule_labels=labels, inputs=tuple(inputs),
        notes=notes,
    )


def _active_migrations(config: Config, coins: tuple[str, ...], wanted: tuple[str, ...]) -> tuple[TickerMigration, ...]:
    """Migrations to apply: ``index.migrations`` on, the old or new ticker wanted, the old
    ticker in some price file, and the old ticker not itself a hedged coin."""
    if not config.index.migrations:
        return ()
    names = (config.data.prices,) if isinstance(config.data.prices, str) else tuple(config.data.prices)
    available: set[str] = set()
    for name in names:
        available |= set(_first_bars(config.resolve(name)))
    return tuple(
        m for m in TICKER_MIGRATIONS
        if (m.old in wanted or m.new in wanted) and m.old in available and m.old not in coins
    )


def _join_prices(
    config: Config, close: pd.DataFrame, migrations: tuple[TickerMigration, ...], inputs: list[InputFile]
) -> tuple[pd.DataFrame, tuple[str, ...], tuple[MigrationNote, ...]]:
    """Fill bars from ``data.extra_prices``, then join migrated tickers.

    Returns the closes, the symbols that may now have holes (filled from an extra file or
    joined across a migration) and the migration notes.
    """
    from backtest.data import load_panel

    gappy: set[str] = set()
    close = close.copy()
    resample = "1D" if config.scenario.bar == "1D" else None
    for name in config.data.extra_price_files:
        path = config.resolve(name)
        if not path.exists():
            raise DataError(path, "file named in data.extra_prices does not exist")
        end = config.scenario.end_ts
        wanted = [s for s, first in _first_bars(path).items() if s in close.columns and (end is None or first <= end)]
        if not wanted:
            continue
        extra = load_panel(path, wanted, end=config.scenario.end_ts, resample=resample,
                           max_fill_bars=config.data.max_fill_bars).close.reindex(close.index)
        if extra.notna().any().any():
            close[wanted] = close[wanted].fillna(extra[wanted])
            gappy |= {s for s in wanted if extra[s].notna().any()}
            inputs.append(InputFile("extra_prices", str(path), file_sha256(path)))
    close, notes = apply_migrations(close, migrations)
    gappy = {s for s in gappy if s in close.columns} | {n.new for n in notes}
    return close, tuple(sorted(gappy)), notes


def _migrated_constituents(
    constituents: tuple[str, ...], migrations: tuple[TickerMigration, ...], close: pd.DataFrame
) -> tuple[str, ...]:
    """Constituents with old tickers replaced by the new ones (once), those without data dropped."""
    rename = {m.old: m.new for m in migrations}
    return tuple(dict.fromkeys(rename.get(c, c) for c in constituents if rename.get(c, c) in close.columns))


def _market_caps(
    config: Config, close: pd.DataFrame, migrations: tuple[TickerMigration, ...], inputs: list[InputFile]
) -> pd.DataFrame | None:
    """Market caps for ``weighting = "market_cap"``: the user file (rows used from their
    ``ts``), else the bundled CoinMarketCap snapshots (used from the day after); old
    tickers joined into new ones."""
    if config.index.weighting != "market_cap":
        return None
    if config.index.market_caps is not None:
        path = config.resolve(config.index.market_caps)
        caps = read_market_caps(path, close=close)
    else:
        path = BUNDLED_MARKET_CAPS
        caps = load_snapshot_caps(path)
    inputs.append(InputFile("market_caps", str(path), file_sha256(path)))
    return migrate_caps(caps, migrations)


def _migrated_highs(
    config: Config, close: pd.DataFrame, constituents: tuple[str, ...], migrations: tuple[TickerMigration, ...]
) -> tuple[pd.DataFrame | None, InputFile | None]:
    """Intrabar highs of the constituents, a migrated one's joined from its old and new
    ticker's highs (no bridging: highs in the swap window stay unknown)."""
    used = tuple(m for m in migrations if m.new in constituents)
    if not used:
        return _load_highs(config, close, constituents)
    pseudo = close.copy()
    for m in used:
        pseudo[m.old] = close[m.new] * m.ratio
    high, info = _load_highs(config, pseudo, (*constituents, *(m.old for m in used)))
    if high is None:
        return None, info
    joined, _ = apply_migrations(high, used, max_bridge_days=0.0)
    return joined[list(constituents)], info


def _start_at_price(index: IndexResult, close: pd.DataFrame) -> IndexResult:
    """The index rescaled to start at ``sum_i w_i P[start, i]`` (``index.start_at_price``).

    The chain-linked level is proportional to its base level, so level, high and units
    scale by one factor; weights are unchanged."""
    w0 = index.weights.iloc[0]
    factor = float((w0 * close.loc[index.start, w0.index]).sum()) / float(index.level.loc[index.start])
    return replace(index, level=index.level * factor, high=index.high * factor, units=index.units * factor)


def _modelled_book(
    config: Config, close_times: pd.DatetimeIndex, idx: np.ndarray, inputs: list[InputFile]
) -> tuple[C.ContractBook, C.BasisInfo]:
    """Modelled quarterly futures with the configured basis (constant or series proxy).

    With ``futures.basis = "series"`` the basis file is read and cleaned
    (:func:`backtest.contracts.load_basis_series`), each bar takes the value last observed
    at or before its close (:func:`backtest.contracts.basis_per_bar`), and the file is
    added to ``inputs`` with its hash.
    """
    fut = config.futures
    if fut.basis == "constant":
        book = C.modelled_quarterly(close_times, idx, fut.basis_ann)
        info = C.BasisInfo(
            source="constant", is_proxy=False, description=f"constant assumption: {fut.basis_ann:.2%}/yr",
            file=None, sha256=None, mean_ann=fut.basis_ann, min_ann=fut.basis_ann, max_ann=fut.basis_ann,
        )
        return book, info
    path = config.resolve(fut.basis_file)
    if not path.exists():
        raise DataError(path, "basis file not found (futures.basis_file)")
    series = C.load_basis_series(path, min_days_to_expiry=fut.basis_min_days_to_expiry)
    b = C.basis_per_bar(close_times, series, max_stale_days=fut.basis_max_stale_days)
    digest = file_sha256(path)
    inputs.append(InputFile("basis", str(path), digest))
    what = (
        f"series proxy: annualised basis of {path.name} (rows with > {fut.basis_min_days_to_expiry:g} days to expiry, "
        "last value observed at or before each bar's close); no AI-index future trades"
    )
    book = C.modelled_quarterly(close_times, idx, b, source=f"modelled: F = I * exp(b_t * tau), b_t = {what}")
    info = C.BasisInfo(
        source="series", is_proxy=True, description=what, file=path.name, sha256=digest,
        mean_ann=float(b.mean()), min_ann=float(b.min()), max_ann=float(b.max()),
        rows_kept=series.rows_kept, rows_total=series.rows_total, min_days_to_expiry=series.min_days_to_expiry,
    )
    return book, info


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


def _bisection_steps(lo: np.ndarray, hi: np.ndarray, tol_usd: float) -> int:
    """Halvings left until every bracket ``[lo, hi]`` is at most ``tol_usd`` wide (an estimate
    for progress reports: ``max ceil(log2((hi - lo) / tol_usd))``)."""
    width = (hi - lo)[hi - lo > tol_usd]
    return int(np.ceil(np.log2(width.max() / tol_usd))) if width.size else 0


def _trials_per_row(rows: int) -> int:
    """Collaterals per variant one kernel pass can try for the price of one: the many-variant
    kernel runs groups of ``K._GROUP`` variants side by side, a short group padded with
    copies, so ``rows`` variants leave room for ``floor(ceil(rows / G) G / rows)`` trials each
    (10 for the demo's 3 rules, 32 for one variant, 1 from 17 variants on)."""
    if rows <= 0:
        return 1
    G = K._GROUP
    return max(1, (-(-rows // G) * G) // rows)


def _tree_depth(rows: int) -> int:
    """Levels of the bisection one pass decides: the largest ``d`` with ``2**d - 1`` midpoints
    per row within :func:`_trials_per_row` (at least 1)."""
    return max(1, (_trials_per_row(rows) + 1).bit_length() - 1)


def _passes_left(lo: np.ndarray, hi: np.ndarray, tol_usd: float, depth: int) -> int:
    """Kernel passes left for the halvings of :func:`_bisection_steps`, ``depth`` per pass."""
    return -(-_bisection_steps(lo, hi, tol_usd) // depth)


def _bisect_levels(lo: np.ndarray, hi: np.ndarray, depth: int, tol_usd: float,
                   bad_at: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``depth`` steps of the bisection of every bracket ``[lo, hi]`` (one row each) in one call
    of ``bad_at``, with the same arithmetic and outcome as ``depth`` sequential steps.

    A sequential step halves a bracket wider than ``tol_usd`` at ``mid = 0.5 (lo + hi)``: ``lo =
    mid`` when ``mid`` has an event, else ``hi = mid``. The ``depth`` steps' midpoints form a
    binary tree (node ``i`` has children ``2i + 1`` and ``2i + 2``), all computed first and
    tried together (``bad_at`` gets them row-major, ``2**depth - 1`` per row); then each row
    walks down its tree by the outcomes, stopping once its bracket is within ``tol_usd``.
    """
    n_nodes = 2**depth - 1
    rows = lo.size
    node_lo = np.empty((rows, n_nodes))
    node_hi = np.empty((rows, n_nodes))
    node_lo[:, 0], node_hi[:, 0] = lo, hi
    mids = np.empty((rows, n_nodes))
    for i in range(n_nodes):
        mids[:, i] = 0.5 * (node_lo[:, i] + node_hi[:, i])
        left, right = 2 * i + 1, 2 * i + 2
        if right < n_nodes:
            node_lo[:, left], node_hi[:, left] = node_lo[:, i], mids[:, i]
            node_lo[:, right], node_hi[:, right] = mids[:, i], node_hi[:, i]
    bad = bad_at(mids.ravel()).reshape(rows, n_nodes)
    lo, hi = lo.copy(), hi.copy()
    for r in range(rows):
        i = 0
        while i < n_nodes and hi[r] - lo[r] > tol_usd:
            if bad[r, i]:
                lo[r] = mids[r, i]
                i = 2 * i + 2
            else:
                hi[r] = mids[r, i]
                i = 2 * i + 1
    return lo, hi


def min_safe_collaterals(market: Market, variants: Sequence[Variant], *, tol_usd: float = MIN_SAFE_TOL_USD,
                         progress: Progress | None = None) -> np.ndarray:
    """Smallest starting collateral per variant for which the margin-on replay with reserve 0
    has no margin call, no capped re-size and no liquidation (USD, rounded up to whole dollars).

    Each variant is replayed with ``margin_enabled = True``, ``reserve_usd = 0`` and a trial
    ``collateral_usd = c``. The set of event-free ``c`` is ``[c*, inf)``: as long as no event
    happens, the trades, costs and futures cash flows do not depend on ``c`` (the margin
    wallet is ``c + flows_t``), and each event condition (``MB_adv < MM_adv`` at a bar's
    adverse intrabar price, ``IM(target) > MB`` at a re-size) is ``c < threshold_t - flows_t``;
    so a collateral above an event-free one is event-free too. ``c*`` is found by bisection
    to within ``tol_usd``: collateral 0 is tried first (event-free for a variant that never
    holds a hedge); the first trial upper bound is the margin-off maintenance need
    ``margin_need`` (below it the margin-on path breaches maintenance), doubled until
    event-free; then bisection.

    Each kernel pass tries several collaterals per variant at once, in the lanes the
    many-variant kernel would otherwise fill with copies (:func:`_trials_per_row`): the
    margin-off replay and collateral 0 share the first pass, the next doublings of the upper
    bound are tried together, and each pass decides several halvings
    (:func:`_bisect_levels`, the tree of their midpoints). Every bracket takes exactly the
    values of one trial per pass (:func:`backtest.reference.min_safe_collaterals_reference`,
    tested equal), in fewer passes: 9 or 10 instead of 25 or 26 for the demos' three rules.

    ``progress`` (optional) is called as ``progress("collateral bisection", passes, total)``
    after each kernel pass; ``total`` is re-estimated as the bounds narrow
    (:func:`_passes_left`) and equals ``passes`` at the last call.

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
    step = "collateral bisection"
    report_progress(progress, step, 0, 2)  # the first pass and at least one more (re-estimated below)
    first = run_variants(market, [replace(v, margin_enabled=False, collateral_usd=0.0) for v in base]
                         + [replace(v, collateral_usd=0.0) for v in base])
    need = np.maximum(first[:n, K.SUM.index("margin_need")], 0.0)
    zero_ok = ~_margin_events(first[n:])
    passes = 1
    lo = np.full(n, -1.0)  # largest collateral known to have an event (-1: none yet)
    hi = np.maximum(need, 1.0)
    hi[zero_ok] = 0.0
    open_ = ~zero_ok
    lo[open_] = 0.0
    all_rows = np.arange(n)
    doublings = 0
    while open_.any():  # grow the upper bound: hi, 2 hi, 4 hi, ... tried together
        rows = all_rows[open_]
        report_progress(progress, step, passes, passes + 1 + _passes_left(lo[~zero_ok], hi[~zero_ok], tol_usd,
                                                                           _tree_depth(n - int(zero_ok.sum()))))
        if doublings >= 200:
            raise RuntimeError("min_safe_collaterals: no event-free collateral found")
        k = min(_trials_per_row(rows.size), 200 - doublings)
        scale = 2.0 ** np.arange(k)
        bad = events((hi[rows, None] * scale).ravel(), np.repeat(rows, k)).reshape(rows.size, k)
        passes += 1
        doublings += k
        for r, row_bad in zip(rows, bad):
            m = int(np.argmin(row_bad)) if not row_bad.all() else k  # first event-free trial
            if m > 0:
                lo[r] = hi[r] * scale[m - 1]
            hi[r] = hi[r] * scale[m] if m < k else hi[r] * 2.0**k
            open_[r] = m == k
    while True:
        rows = all_rows[(hi - lo > tol_usd) & ~zero_ok]
        if rows.size == 0:
            break
        depth = _tree_depth(rows.size)
        lo[rows], hi[rows] = _bisect_levels(lo[rows], hi[rows], depth, tol_usd,
                                            lambda mids: events(mids, np.repeat(rows, 2**depth - 1)))
        passes += 1
        report_progress(progress, step, passes, passes + _passes_left(lo[~zero_ok], hi[~zero_ok], tol_usd, depth))
    report_progress(progress, step, passes, passes)
    return np.ceil(hi)
