"""Scenario configuration: frozen dataclasses with explicit units, read from TOML.

Every section of a config file maps onto one dataclass below; every key is
documented in the README with its unit and default. Reading is strict: an
unknown key, a wrong type or an out-of-range value raises :class:`ConfigError`
naming the dotted key (``fees.taker_bps``) and the file.

Units are spelled out in the names: ``_bps`` (basis points, 1 bp = 0.01 %),
``_usd``, ``_bars``, ``_days``, ``_rate`` (a fraction, 0.02 = 2 %), ``_ann``
(annualised with 365 days).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from backtest.dates import DATE_RANGE, parse_utc
from backtest.errors import ConfigError
from backtest.windows import Event, load_events

__all__ = [
    "ScenarioSection",
    "DataSection",
    "PositionSection",
    "IndexSection",
    "FuturesSection",
    "RollSection",
    "FundingSection",
    "FeesSection",
    "SlippageSection",
    "MarginSection",
    "RebalanceSection",
    "ReportSection",
    "RuleSpec",
    "Config",
    "load_config",
    "config_from_mapping",
    "config_to_dict",
    "merge_overrides",
    "parse_utc",
    "config_events",
    "PROJECT_ROOT",
    "BUNDLED_DATA",
]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _bundled_data() -> Path:
    """The folder of the bundled data: ``data/`` of a source checkout, else the installed
    ``hedgebt_data`` package (the same files, shipped in the wheel)."""
    source = PROJECT_ROOT / "data"
    if (PROJECT_ROOT / "pyproject.toml").is_file() and source.is_dir():
        return source
    from importlib import resources

    return Path(str(resources.files("hedgebt_data")))


#: The bundled market data (Parquet files and ``PROVENANCE.md``).
BUNDLED_DATA = _bundled_data()

Bar = Literal["1h", "1D"]


def _check(cond: bool, key: str, problem: str) -> None:
    if not cond:
        raise ConfigError(key, problem)


#: Upper bounds of numeric config keys (absolute value; lower bounds are in each section's
#: checks). Beyond them a value is a typo or a unit mistake, and products such as units x
#: price x contract size would overflow or lose the hedge to rounding. Every float is also
#: required to be finite.
BOUNDS: dict[str, float] = {
    "data.max_fill_bars": 100_000,
    "position.units": 1e15,
    "position.notional_usd": 1e12,
    "index.min_history_days": 3650,
    "index.vol_lookback_days": 3650,
    "index.min_constituents": 10_000,
    "futures.contract_size": 1e9,
    "roll.grace_bars": 100_000,
    "funding.interest_per_interval": 0.05,
    "funding.clamp_per_interval": 0.05,
    "funding.fill_rate_per_interval": 0.05,
    "slippage.impact_coef": 100.0,
    "slippage.volume_usd_per_bar": 1e15,
    "margin.initial_rate": 1.0,
    "margin.collateral_usd": 1e15,
    "margin.reserve_usd": 1e15,
    "rebalance.every_bars": 1_000_000,
    "rebalance.band": 100.0,
    "rebalance.min_trade_contracts": 1e15,
    "report.max_rules": 1000,
}

#: Bounds of numeric ``[[rules]]`` parameters by name (absolute value), and for any other one.
RULE_PARAM_BOUNDS: dict[str, float] = {
    "ratio": 100.0,
    "fraction": 100.0,
    "halflife": 1_000_000.0,
    "window": 10_000_000,
    "min_periods": 10_000_000,
    "refit_bars": 10_000_000,
    "fit_window": 10_000_000,
}
RULE_PARAM_DEFAULT_BOUND = 1e9

#: Largest accepted config file.
MAX_CONFIG_BYTES = 16 * 1024 * 1024

def is_number(value: Any) -> bool:
    """A real number (Python or NumPy int or float), not a bool, a string or None."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def is_whole(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_bounds(key: str, value: Any, bound: float | None) -> None:
    """A number (or each number of a list) must be finite and ``|value| <= bound``."""
    values = value if isinstance(value, tuple) else (value,)
    for i, v in enumerate(values):
        where = key if len(values) == 1 and not isinstance(value, tuple) else f"{key}[{i}]"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(where, f"expected a finite number, got {v!r}")
        if bound is not None and abs(v) > bound:
            raise ConfigError(where, f"expected a value with |value| <= {bound:g}, got {v!r}")


def check_rule_params(family: str, params: Mapping[str, Any], key: str) -> None:
    """Every numeric rule parameter finite and within :data:`RULE_PARAM_BOUNDS`."""
    for name, value in params.items():
        check_bounds(f"{key}.{name}", value, RULE_PARAM_BOUNDS.get(name, RULE_PARAM_DEFAULT_BOUND))


def coerce_fields(cls: type, table: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Type-check and bound-check ``table``'s values against ``cls``'s fields (no unknown keys)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}", f"unknown key; known keys of [{prefix}]: {', '.join(sorted(names))}")
    out = {}
    for name, value in table.items():
        key = f"{prefix}.{name}"
        out[name] = _coerce(_iso(value), hints[name], key)
        check_bounds(key, out[name], BOUNDS.get(key))
    return out


@dataclass(frozen=True)
class ScenarioSection:
    """``[scenario]``: name and replay window.

    Attributes
    ----------
    name : str
        Label used in reports.
    start, end : str or None
        Inclusive UTC bounds (``"2021-01-01"``); ``None`` = all data.
    bar : {"1h", "1D"}
        Bar length. ``"1D"`` resamples hourly data to UTC days (close = last hourly close).
    """

    name: str = "FET hedged with the AI-infrastructure index"
    start: str | None = "2021-01-01"
    end: str | None = None
    bar: Bar = "1h"

    def __post_init__(self) -> None:
        for key in ("start", "end"):
            value = getattr(self, key)
            if value is not None:
                parse_utc(value, f"scenario.{key}")
        if self.start is not None and self.end is not None:
            _check(
                _utc(self.end) > _utc(self.start),
                "scenario.end",
                f"end {self.end!r} is not after start {self.start!r}",
            )

    @property
    def start_ts(self) -> pd.Timestamp | None:
        return None if self.start is None else _utc(self.start)

    @property
    def end_ts(self) -> pd.Timestamp | None:
        return None if self.end is None else _utc(self.end)


def _utc(value: str) -> pd.Timestamp:
    return parse_utc(value, "<date>")


@dataclass(frozen=True)
class DataSection:
    """``[data]``: input files (paths relative to the config file; default: bundled data).

    Attributes
    ----------
    prices : str or tuple of str
        Long-format Parquet of closes (``ts``, ``symbol``, ``close``) for coins and constituents;
        several files may be given (e.g. one per vendor), each symbol in exactly one of them.
    ohlc : str or None
        Long-format OHLCV Parquet whose highs give the index's intrabar high for margin
        checks on bars where every held constituent has one. ``None`` (default): the
        bundled OHLCV file of the scenario's bar length; ``""``: no intrabar data.
    max_fill_bars : int
        Gap policy: runs of up to this many missing bars inside a symbol's life are
        forward-filled (and reported); longer gaps are an error.
    extra_prices : tuple of str
        Long close files (same layout) that only fill bars the ``prices`` files leave empty,
        for symbols already loaded from them (a later stretch of a series, possibly after a
        hole; such a constituent leaves the index at the hole and re-enters at the next
        scheduled rebalance). Default (omitted): the bundled RNDR closes of 2024-06-10 ..
        2024-07-22 when ``prices`` is the bundled hourly file, else none. Files that do not
        exist are an error; ``[]`` for none.
    """

    prices: str | tuple[str, ...] = "binance_spot_1h_close.parquet"
    ohlc: str | None = None
    max_fill_bars: int = 6
    extra_prices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        _check(self.max_fill_bars >= 0, "data.max_fill_bars", f"expected an integer >= 0, got {self.max_fill_bars}")
        files = (self.prices,) if isinstance(self.prices, str) else self.prices
        _check(len(files) > 0, "data.prices", "expected a price file or a non-empty list of price files, got []")
        _check(all(f.strip() for f in files), "data.prices", f"expected file names, got an empty name in {list(files)!r}")
        if self.extra_prices is not None:
            _check(len(set(self.extra_prices)) == len(self.extra_prices), "data.extra_prices", f"duplicate files in {list(self.extra_prices)}")

    @property
    def extra_price_files(self) -> tuple[str, ...]:
        """``extra_prices``, or by default the bundled RNDR 2024 file when ``prices`` is the bundled file."""
        if self.extra_prices is not None:
            return self.extra_prices
        return ("binance_spot_1h_close_RNDR_2024-06_07.parquet",) if self.prices == "binance_spot_1h_close.parquet" else ()


PositionKind = Literal["units", "notional", "file"]


@dataclass(frozen=True)
class PositionSection:
    """``[position]``: the long altcoin holding.

    Attributes
    ----------
    coins : tuple of str
        Coin symbols (one coin or a basket).
    kind : {"units", "notional", "file"}
        ``units``: constant units per coin; ``notional``: constant USD notional per coin,
        reset at every hedge rebalance bar; ``file``: a holdings time series.
    units : tuple of float
        Units per coin (``kind = "units"``).
    notional_usd : tuple of float
        USD per coin (``kind = "notional"``).
    holdings_file : str or None
        Long Parquet/CSV with ``ts``, ``symbol``, ``units`` (``kind = "file"``); the holding
        changes at each row's bar and stays until the next row; the hedge is re-sized at
        every bar where the holding changes.
    """

    coins: tuple[str, ...] = ("FET",)
    kind: PositionKind = "units"
    units: tuple[float, ...] = (1_000_000.0,)
    notional_usd: tuple[float, ...] = ()
    holdings_file: str | None = None

    def __post_init__(self) -> None:
        _check(len(self.coins) > 0, "position.coins", "expected at least one coin symbol")
        _check(len(set(self.coins)) == len(self.coins), "position.coins", f"duplicate coins in {list(self.coins)}")
        if self.kind == "units":
            _check(
                len(self.units) == len(self.coins),
                "position.units",
                f"expected one value per coin ({len(self.coins)}), got {len(self.units)}",
            )
            _check(all(u > 0 for u in self.units), "position.units", f"expected positive units, got {list(self.units)}")
        elif self.kind == "notional":
            _check(
                len(self.notional_usd) == len(self.coins),
                "position.notional_usd",
                f"expected one value per coin ({len(self.coins)}), got {len(self.notional_usd)}",
            )
            _check(
                all(n > 0 for n in self.notional_usd),
                "position.notional_usd",
                f"expected positive USD amounts, got {list(self.notional_usd)}",
            )
        else:
            _check(self.holdings_file is not None, "position.holdings_file", "required when position.kind = 'file'")


Weighting = Literal["equal", "inverse_vol", "market_cap"]
IndexSchedule = Literal["daily", "weekly", "monthly", "quarterly"]


@dataclass(frozen=True)
class IndexSection:
    """``[index]``: the AI-infrastructure index built from constituent prices.

    ``constituents = []`` (the default) selects the documented default AI basket
    (``backtest.index.DEFAULT_AI_BASKET``) minus the hedged coins.

    ``market_caps``: a user file (``ts``, ``symbol``, ``market_cap`` or ``supply``; each row
    used from its ``ts``) for ``weighting = "market_cap"``; ``None`` = the bundled monthly
    CoinMarketCap snapshots, each used from the day after its date.
    ``market_caps_max_missing``: snapshots in a row a constituent may miss and keep its last
    known cap; one more and it drops out (reported). ``migrations``: join migrated tickers
    (``backtest.index.TICKER_MIGRATIONS``, e.g. RNDR -> RENDER) into one constituent.
    ``start_at_price``: start the index at the weighted price of its constituents instead of
    1000 (a one-coin index then equals the coin's price, as a futures file on that coin needs).
    """

    constituents: tuple[str, ...] = ()
    weighting: Weighting = "equal"
    rebalance: IndexSchedule = "monthly"
    min_history_days: int = 30
    max_weight: float | None = 0.30
    vol_lookback_days: int = 30
    min_constituents: int = 3
    market_caps: str | None = None
    include_hedged_coins: bool = False
    market_caps_max_missing: int = 1
    migrations: bool = True
    start_at_price: bool = False

    def __post_init__(self) -> None:
        _check(self.min_history_days >= 0, "index.min_history_days", f"expected >= 0, got {self.min_history_days}")
        _check(self.vol_lookback_days >= 2, "index.vol_lookback_days", f"expected >= 2, got {self.vol_lookback_days}")
        _check(self.min_constituents >= 1, "index.min_constituents", f"expected >= 1, got {self.min_constituents}")
        if self.max_weight is not None:
            _check(0 < self.max_weight <= 1, "index.max_weight", f"expected a fraction in (0, 1], got {self.max_weight}")
        _check(self.market_caps_max_missing >= 0, "index.market_caps_max_missing", f"expected an integer >= 0, got {self.market_caps_max_missing}")


FuturesKind = Literal["quarterly", "perpetual"]
BasisSource = Literal["constant", "series"]
SettleAt = Literal["index", "file"]


@dataclass(frozen=True)
class FuturesSection:
    """``[futures]``: the hedge instrument on the index.

    Attributes
    ----------
    kind : {"quarterly", "perpetual"}
        Dated quarterly contracts (expiring the last Friday of Mar/Jun/Sep/Dec at 08:00 UTC,
        cash-settled at the index) or a perpetual marked at the index.
    contract_size : float
        Index units per contract; one contract's notional = contract_size x futures price (USD).
    basis_ann : float
        Annualised basis b of the modelled dated futures: F = I x exp(b x tau), tau in years of 365 days.
    premium : float
        Perpetual mark premium over the index (fraction): mark = I x (1 + premium).
    price_file : str or None
        User-supplied dated futures prices (long Parquet: ``ts``, ``expiry``, ``close``) instead
        of the basis model.
    basis : {"constant", "series"}
        Where the modelled basis comes from: ``constant`` = ``basis_ann``; ``series`` = the
        annualised basis ``b_t`` of ``basis_file`` as last observed at or before each bar's
        close: ``F = I x exp(b_t x tau)`` (see :func:`backtest.contracts.load_basis_series`).
    basis_file : str
        Parquet with ``obs_ts`` (UTC time the value became known), ``basis_ann`` and
        ``days_to_expiry``; default: the bundled CME Bitcoin front-month basis (a proxy: no
        AI-index future trades).
    basis_min_days_to_expiry : float
        Rows of ``basis_file`` with ``days_to_expiry`` at or below this are dropped (the
        annualised basis of a contract near expiry is noise).
    basis_max_stale_days : float
        A bar whose last basis observation is older than this many days is an error (dropping the
        last week before each monthly CME expiry leaves 11-12 days without a new value).
    settle_at : {"index", "file"}
        With ``price_file``: the settlement-bar price of an expiring contract is the index
        (cash settlement at the index) or the file's own price (its final settlement).
    underlying : str
        What the futures are written on: ``"index"`` (the AI index built from ``[index]``)
        or a symbol of the price data (``"BTC"``, ``"ETH"``, ...), whose close is then the
        underlying level (no index is built; ``[index]`` is ignored). A symbol missing from
        the data is an error naming the available ones.
    """

    kind: FuturesKind = "quarterly"
    contract_size: float = 1.0
    basis_ann: float = 0.05
    premium: float = 0.0
    price_file: str | None = None
    basis: BasisSource = "constant"
    basis_file: str = "cme_btc_front_month_basis_daily.parquet"
    basis_min_days_to_expiry: float = 7.0
    basis_max_stale_days: float = 14.0
    settle_at: SettleAt = "index"
    underlying: str = "index"

    def __post_init__(self) -> None:
        _check(
            bool(self.underlying) and self.underlying == self.underlying.strip() and " " not in self.underlying,
            "futures.underlying",
            f"expected 'index' or a symbol of the price data such as 'BTC', got {self.underlying!r}",
        )
        _check(self.contract_size > 0, "futures.contract_size", f"expected > 0 index units, got {self.contract_size}")
        _check(-1.0 < self.basis_ann < 5.0, "futures.basis_ann", f"expected an annual rate in (-1, 5), got {self.basis_ann}")
        _check(-0.5 < self.premium < 0.5, "futures.premium", f"expected a fraction in (-0.5, 0.5), got {self.premium}")
        _check(0 <= self.basis_min_days_to_expiry < 366, "futures.basis_min_days_to_expiry", f"expected 0..365 days, got {self.basis_min_days_to_expiry}")
        _check(0 < self.basis_max_stale_days <= 366, "futures.basis_max_stale_days", f"expected (0, 366] days, got {self.basis_max_stale_days}")


RollMode = Literal["before_expiry", "hold_to_expiry"]


@dataclass(frozen=True)
class RollSection:
    """``[roll]``: when a dated position moves into the next contract.

    Attributes
    ----------
    mode : {"before_expiry", "hold_to_expiry"}
        Roll ``days_before_expiry`` days before expiry at ``hour_utc``, or hold to expiry
        (cash settlement at the index, settlement fee) and re-open in the next contract.
    days_before_expiry : int
        Days before expiry that the roll starts.
    hour_utc : int
        Hour of day (UTC) the roll starts.
    grace_bars : int
        Spread the roll over this many bars (1 = all at once): after j of K bars,
        j/K of the hedge sits in the new contract.
    """

    mode: RollMode = "before_expiry"
    days_before_expiry: int = 3
    hour_utc: int = 8
    grace_bars: int = 1

    def __post_init__(self) -> None:
        _check(0 <= self.days_before_expiry <= 60, "roll.days_before_expiry", f"expected 0..60 days, got {self.days_before_expiry}")
        _check(0 <= self.hour_utc <= 23, "roll.hour_utc", f"expected an hour 0..23, got {self.hour_utc}")
        _check(self.grace_bars >= 1, "roll.grace_bars", f"expected >= 1 bar, got {self.grace_bars}")


FundingSource = Literal["constant", "formula", "series"]


@dataclass(frozen=True)
class FundingSection:
    """``[funding]``: perpetual funding (ignored for dated futures).

    ``payment = -position notional x rate`` at each funding time: a short receives
    a positive rate.

    Attributes
    ----------
    source : {"constant", "formula", "series"}
        ``constant``: ``rate_per_interval``; ``formula``: the usual clamp
        ``premium + clamp(interest - premium, -clamp, +clamp)`` with the perpetual's
        premium; ``series``: a real funding history (a proxy for an index perpetual).
    rate_per_interval : float
        Funding rate per funding interval (0.0001 = 0.01 %).
    interval_hours : int
        Hours between funding times, counted from 00:00 UTC (8 -> 00, 08, 16 UTC).
    interest_per_interval, clamp_per_interval : float
        Parameters of the ``formula`` source.
    series_file, series_symbol : str
        Long Parquet (``ts``, ``symbol``, ``funding_rate``) and the symbol to use.
    fill_rate_per_interval : float or None
        Rate used at funding times the series does not cover; ``None`` makes that an error.
    """

    source: FundingSource = "constant"
    rate_per_interval: float = 0.0001
    interval_hours: int = 8
    interest_per_interval: float = 0.0001
    clamp_per_interval: float = 0.0005
    series_file: str = "binance_usdm_perp_funding_8h.parquet"
    series_symbol: str = "FET"
    fill_rate_per_interval: float | None = None

    def __post_init__(self) -> None:
        _check(self.interval_hours in (1, 2, 4, 8, 12, 24), "funding.interval_hours", f"expected one of 1, 2, 4, 8, 12, 24, got {self.interval_hours}")
        _check(abs(self.rate_per_interval) < 0.05, "funding.rate_per_interval", f"expected |rate| < 0.05 per interval, got {self.rate_per_interval}")
        _check(self.clamp_per_interval >= 0, "funding.clamp_per_interval", f"expected >= 0, got {self.clamp_per_interval}")


OrderType = Literal["taker", "maker"]


@dataclass(frozen=True)
class FeesSection:
    """``[fees]``: exchange fees in basis points of traded notional.

    Defaults are a regular-tier USD-M venue: maker 2 bps (0.02 %), taker 5 bps (0.05 %),
    settlement at the taker rate.
    """

    maker_bps: float = 2.0
    taker_bps: float = 5.0
    order_type: OrderType = "taker"
    settlement_bps: float = 5.0

    def __post_init__(self) -> None:
        for key in ("maker_bps", "taker_bps", "settlement_bps"):
            value = getattr(self, key)
            _check(0 <= value <= 1000, f"fees.{key}", f"expected 0..1000 bps, got {value}")

    @property
    def trade_bps(self) -> float:
        return self.taker_bps if self.order_type == "taker" else self.maker_bps


@dataclass(frozen=True)
class SlippageSection:
    """``[slippage]``: execution cost beyond fees.

    cost = notional x (half_spread_bps / 1e4 + impact_coef x sqrt(notional / bar volume in USD)).
    With ``volume_usd_per_bar = 0`` the impact term is off (half-spread only) and the
    summary says so.
    """

    half_spread_bps: float = 1.0
    impact_coef: float = 0.01
    volume_usd_per_bar: float = 10_000_000.0

    def __post_init__(self) -> None:
        _check(0 <= self.half_spread_bps <= 1000, "slippage.half_spread_bps", f"expected 0..1000 bps, got {self.half_spread_bps}")
        _check(self.impact_coef >= 0, "slippage.impact_coef", f"expected >= 0, got {self.impact_coef}")
        _check(self.volume_usd_per_bar >= 0, "slippage.volume_usd_per_bar", f"expected >= 0 USD, got {self.volume_usd_per_bar}")


MarginPolicy = Literal["top_up", "cut_hedge"]
VariationMargin = Literal["per_bar", "daily"]


@dataclass(frozen=True)
class MarginSection:
    """``[margin]``: the futures margin account, separate from the coin.

    Attributes
    ----------
    enabled : bool
        ``False`` turns margin checks off (the account can go negative).
    initial_rate, maintenance_rate : float
        Initial / maintenance margin as fractions of futures notional.
    collateral_usd : float
        Starting margin balance (USD).
    reserve_usd : float
        Cash set aside for top-ups (USD), part of the hedged portfolio's capital.
    policy : {"top_up", "cut_hedge"}
        On a margin call: restore the balance to initial margin from the reserve
        (liquidation if the reserve cannot restore maintenance), or cut the hedge to what
        the balance supports at initial margin.
    liquidation_fee_bps : float
        Penalty on the notional of a liquidated position.
    variation : {"per_bar", "daily"}
        When futures P&L is settled into the margin wallet (00:00 UTC for ``daily``).
    """

    enabled: bool = True
    initial_rate: float = 0.05
    maintenance_rate: float = 0.02
    collateral_usd: float = 250_000.0
    reserve_usd: float = 1_000_000.0
    policy: MarginPolicy = "top_up"
    liquidation_fee_bps: float = 50.0
    variation: VariationMargin = "per_bar"

    def __post_init__(self) -> None:
        _check(0 < self.maintenance_rate < 1, "margin.maintenance_rate", f"expected a fraction in (0, 1), got {self.maintenance_rate}")
        _check(
            self.maintenance_rate <= self.initial_rate < 1,
            "margin.initial_rate",
            f"expected maintenance_rate ({self.maintenance_rate}) <= initial_rate < 1, got {self.initial_rate}",
        )
        _check(self.collateral_usd >= 0, "margin.collateral_usd", f"expected >= 0 USD, got {self.collateral_usd}")
        _check(self.reserve_usd >= 0, "margin.reserve_usd", f"expected >= 0 USD, got {self.reserve_usd}")
        _check(0 <= self.liquidation_fee_bps <= 1000, "margin.liquidation_fee_bps", f"expected 0..1000 bps, got {self.liquidation_fee_bps}")


RebalanceMode = Literal["every", "band", "band_on_schedule"]


@dataclass(frozen=True)
class RebalanceSection:
    """``[rebalance]``: when the short is re-sized to the rule's target.

    Attributes
    ----------
    mode : {"every", "band", "band_on_schedule"}
        ``every``: every ``every_bars`` bars; ``band``: on any bar where the held hedge
        ratio drifts more than ``band`` (relative) from target; ``band_on_schedule``:
        every ``every_bars`` bars, only if the drift exceeds ``band``.
        The hedge is also re-sized on the first bar and whenever the holding changes.
    every_bars : int
        Rebalance period in bars.
    band : float
        Relative drift |h_held - h_target| / |h_target| that triggers a trade.
    whole_contracts : bool
        Round targets to whole contracts (half away from zero).
    min_trade_contracts : float
        Trades smaller than this are skipped.
    """

    mode: RebalanceMode = "every"
    every_bars: int = 24
    band: float = 0.10
    whole_contracts: bool = True
    min_trade_contracts: float = 0.0

    def __post_init__(self) -> None:
        _check(self.every_bars >= 1, "rebalance.every_bars", f"expected >= 1 bar, got {self.every_bars}")
        _check(self.band >= 0, "rebalance.band", f"expected a fraction >= 0, got {self.band}")
        _check(self.band <= 1, "rebalance.band",
               f"expected a fraction (0.10 = 10 %), got {self.band:g}; for {self.band:g} % write {self.band / 100:g}")
        _check(self.min_trade_contracts >= 0, "rebalance.min_trade_contracts", f"expected >= 0, got {self.min_trade_contracts}")


ReportHorizon = Literal["bar", "1D", "7D"]


@dataclass(frozen=True)
class ReportSection:
    """``[report]``: how results are summed up.

    Attributes
    ----------
    horizon : {"bar", "1D", "7D"}
        Horizon of the headline hedge effectiveness, its bootstrap interval and the
        recommendation: returns summed over non-overlapping spans of one bar, one day or
        seven days (see :func:`backtest.metrics.he_by_horizon`).
    max_rules : int
        The figures and the PDF show at most this many rules -- the best by hedge
        effectiveness at ``horizon`` -- plus the recommended rule and the baseline when
        they are not among them (see :func:`reports.render.report_rules`);
        ``metrics.csv``, ``events.csv`` and ``summary.json`` keep every rule.
    """

    horizon: ReportHorizon = "1D"
    max_rules: int = 8

    def __post_init__(self) -> None:
        _check(self.horizon in ("bar", "1D", "7D"), "report.horizon", f"expected 'bar', '1D' or '7D', got {self.horizon!r}")
        _check(isinstance(self.max_rules, int) and not isinstance(self.max_rules, bool) and self.max_rules >= 1,
               "report.max_rules", f"expected an integer >= 1, got {self.max_rules!r}")


@dataclass(frozen=True)
class RuleSpec:
    """One ``[[rules]]`` entry: a hedge-ratio rule family and its parameters."""

    family: str
    params: tuple[tuple[str, Any], ...] = ()
    label: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class Config:
    """A whole scenario. ``base_dir`` resolves relative file paths (the config file's folder)."""

    scenario: ScenarioSection = field(default_factory=ScenarioSection)
    data: DataSection = field(default_factory=DataSection)
    position: PositionSection = field(default_factory=PositionSection)
    index: IndexSection = field(default_factory=IndexSection)
    futures: FuturesSection = field(default_factory=FuturesSection)
    roll: RollSection = field(default_factory=RollSection)
    funding: FundingSection = field(default_factory=FundingSection)
    fees: FeesSection = field(default_factory=FeesSection)
    slippage: SlippageSection = field(default_factory=SlippageSection)
    margin: MarginSection = field(default_factory=MarginSection)
    rebalance: RebalanceSection = field(default_factory=RebalanceSection)
    rules: tuple[RuleSpec, ...] = (RuleSpec("notional", (("fraction", 1.0),)),)
    events: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    compare: Mapping[str, Any] | None = None
    base_dir: str = str(BUNDLED_DATA)
    report: ReportSection = field(default_factory=ReportSection)

    def resolve(self, relpath: str) -> Path:
        """Absolute path of a data file named in the config."""
        path = Path(relpath).expanduser()
        if path.is_absolute():
            return path
        local = Path(self.base_dir) / path
        bundled = BUNDLED_DATA / path
        return bundled if not local.exists() and bundled.exists() else local


_SECTIONS: dict[str, type] = {
    "scenario": ScenarioSection,
    "data": DataSection,
    "position": PositionSection,
    "index": IndexSection,
    "futures": FuturesSection,
    "roll": RollSection,
    "funding": FundingSection,
    "fees": FeesSection,
    "slippage": SlippageSection,
    "margin": MarginSection,
    "rebalance": RebalanceSection,
    "report": ReportSection,
}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "none (omit the key)"
    return {float: "a number", int: "an integer", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (lists -> tuples, int -> float)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp) and isinstance(value, str):
            return value
    elif origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(tp):
            return None  # not expressible in TOML, but accepted from Python mappings
        for option in typing.get_args(tp):
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                pass
    elif origin is tuple:
        if isinstance(value, list):
            inner = typing.get_args(tp)[0]
            return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(key, f"expected {_describe(tp)}, got {value!r}")


def _build_section(cls: type, table: Any, prefix: str) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(prefix, f"expected a table [{prefix}], got {table!r}")
    return cls(**coerce_fields(cls, table, prefix))


def _build_rules(items: Any) -> tuple[RuleSpec, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError("rules", f"expected a non-empty array of [[rules]] tables, got {items!r}")
    out = []
    for i, item in enumerate(items):
        key = f"rules[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(key, f"expected a table, got {item!r}")
        if "family" not in item or not isinstance(item["family"], str):
            raise ConfigError(f"{key}.family", "required: the rule family, e.g. 'notional' or 'min_variance'")
        label = item.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise ConfigError(f"{key}.label", f"expected a non-empty string (omit the key for the rule's own name), "
                                              f"got {label!r}")
        params = tuple(sorted((k, v) for k, v in item.items() if k not in ("family", "label")))
        if item["family"] == "multi_min_variance":  # list parameters (instruments, ...) kept as tuples
            params = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in params)
        check_rule_params(item["family"], dict(params), key)
        _validate_rule(item["family"], params, key)
        out.append(RuleSpec(item["family"], params, label))
    return tuple(out)


def _validate_rule(family: str, params: tuple[tuple[str, Any], ...], key: str) -> None:
    """Build the rule once so a bad family or parameter fails when the config is read."""
    from strategies.rules import make_rule

    try:
        make_rule(family, **dict(params))
    except ConfigError as exc:
        field = exc.key.rsplit(".", 1)[-1]
        field = "family" if exc.key == f"rules.{family}" else field
        raise ConfigError(f"{key}.{field}", str(exc).split(": ", 1)[-1]) from None


def _iso(value: Any) -> Any:
    """TOML dates and date-times as ISO strings (JSON-able, re-readable)."""
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return value


def config_from_mapping(raw: Mapping[str, Any], *, base_dir: str | Path | None = None, source: str | None = None) -> Config:
    """Build a validated :class:`Config` from a parsed TOML mapping.

    Raises
    ------
    ConfigError
        On an unknown section or key, a wrong type or an invalid value; the message
        names the dotted key and, when given, the source file.
    """
    try:
        kwargs: dict[str, Any] = {}
        for name, value in raw.items():
            if name in _SECTIONS:
                kwargs[name] = _build_section(_SECTIONS[name], value, name)
            elif name == "rules":
                kwargs["rules"] = _build_rules(value)
            elif name == "events":
                # each window checked now (a table of tables; names, keys, dates, end after start), not at the report
                load_events(value)
                kwargs["events"] = tuple(
                    (str(k), tuple(sorted((kk, _iso(vv)) for kk, vv in v.items()))) for k, v in value.items()
                )
            elif name == "compare":
                if not isinstance(value, Mapping):
                    raise ConfigError("compare", "expected a [compare] table (see the README, 'Comparing rules at scale')")
                kwargs["compare"] = dict(value)
            else:
                known = ", ".join([*sorted(_SECTIONS), "rules", "events", "compare"])
                raise ConfigError(name, f"unknown section; known sections: {known}")
        if base_dir is not None:
            kwargs["base_dir"] = str(Path(base_dir).resolve())
        return Config(**kwargs)
    except ConfigError as exc:
        if source is not None and exc.source is None:
            raise ConfigError(exc.key, str(exc).split(": ", 1)[1], source=source) from None
        raise


def _plain(value: Any) -> Any:
    """``value`` with NumPy numbers and arrays as the Python numbers and lists a TOML file gives
    (``np.int64(72)`` -> ``72``, ``np.float32(0.5)`` -> ``0.5``, an array -> a list), inside
    mappings and lists too; anything else as it is (and validated as a file's value)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    return value.item() if isinstance(value, np.generic) else value


def merge_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with ``overrides`` applied: a table given as a mapping updates that table's keys
    (``margin={"reserve_usd": 0}`` keeps the other margin keys); any other value replaces the
    whole entry (``rules=[{"family": "notional"}]``). NumPy numbers and arrays in ``overrides``
    count as the Python numbers and lists they hold (:func:`_plain`)."""
    out = dict(raw)
    for name, value in overrides.items():
        value = _plain(value)
        if isinstance(value, Mapping) and isinstance(out.get(name), Mapping):
            out[name] = {**out[name], **value}
        else:
            out[name] = value
    return out


def load_config(path: str | Path | None = None, /, **overrides: Any) -> Config:
    """Read and validate a TOML scenario file (TOML only: no code is evaluated).

    Data paths in the file are relative to the file's folder; a path not found
    there falls back to the bundled ``data/`` folder (so ``prices =
    "binance_spot_1h_close.parquet"`` works from anywhere).

    Parameters
    ----------
    path : str or Path, optional
        The scenario file; ``None`` starts from the documented defaults.
    **overrides
        Sections or keys to change, validated like the file's own (see
        :func:`merge_overrides`), e.g. ``load_config(p, margin={"reserve_usd": 0})``.
    """
    if path is None:
        return config_from_mapping(merge_overrides({}, overrides))
    path = Path(path)
    from backtest.data import check_input_file
    from backtest.errors import DataError

    try:
        check_input_file(path, "a TOML config file")
    except DataError as exc:
        problem = "config file not found" if exc.problem == "file not found" else exc.problem
        raise ConfigError("<file>", f"{problem}: {path}", source=str(path)) from None
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError("<file>", f"config file larger than {MAX_CONFIG_BYTES // 1024 ** 2} MiB", source=str(path))
    try:
        # utf-8-sig: a byte-order mark written by some Windows editors is accepted and dropped
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("<file>", f"not valid TOML: {exc}", source=str(path)) from None
    except RecursionError:
        raise ConfigError("<file>", "not valid TOML: tables or arrays nested too deeply", source=str(path)) from None
    # a bad override is not the file's fault: the message then says the overrides were applied
    source = f"{path} (with overrides of {', '.join(overrides)})" if overrides else str(path)
    return config_from_mapping(merge_overrides(raw, overrides), base_dir=path.parent, source=source)


#: Keys left out of :func:`config_to_dict` at their default value (added after results were
#: published: a default run's ``summary.json`` stays byte-identical to earlier versions').
_OMIT_AT_DEFAULT: tuple[tuple[str, str], ...] = (("report", "max_rules"),)


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (for ``summary.json`` and reports)."""
    out: dict[str, Any] = {}
    for name in _SECTIONS:
        out[name] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(getattr(config, name)).items()}
    for section, key in _OMIT_AT_DEFAULT:
        if out[section][key] == getattr(_SECTIONS[section](), key):
            del out[section][key]
    out["rules"] = [
        {"family": r.family, **({"label": r.label} if r.label else {}), **dict(r.params)} for r in config.rules
    ]
    out["events"] = {name: dict(spec) for name, spec in config.events}
    if config.compare is not None:
        out["compare"] = dict(config.compare)
    return out


def input_paths(config: Config) -> list[Path]:
    """Every existing file the config names (its data inputs), resolved.

    Found by walking :func:`config_to_dict` for strings that resolve to a file, so fields added
    later are covered too. ``--force`` never deletes a folder holding one of them.
    """
    found: list[Path] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, str) and value and len(value) < 4096 and "\n" not in value and "\0" not in value:
            try:
                path = config.resolve(value)
                if path.is_file():
                    found.append(path)
            except (OSError, ValueError):
                pass

    walk(config_to_dict(config))
    return found


def config_events(config: Config) -> tuple[Event, ...]:
    """The bundled event windows with the configuration's ``[events.<name>]`` windows
    (:func:`backtest.windows.load_events`; a configured window of a bundled name replaces it)."""
    return load_events({name: dict(spec) for name, spec in config.events} or None)
