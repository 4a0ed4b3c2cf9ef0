r"""AI-infrastructure token index: a chain-linked units index built from constituent closes.

No exchange lists a dated future on an AI-token index, so the hedge's futures leg
is modelled on an index built here from constituent prices.

Methodology
-----------
Notation: bars ``t`` on the panel's regular UTC grid, ``P[t,i]`` the close of
constituent ``i`` (USD), ``I[t]`` the index level, ``q_i`` units, ``w_i`` target
weights, ``r`` a rebalance bar.

Rebalance schedule
    A *scheduled* rebalance happens at the first bar present in the panel of each
    UTC day (``"daily"``), ISO week starting Monday 00:00 UTC (``"weekly"``),
    calendar month (``"monthly"``) or calendar quarter starting January, April,
    July, October (``"quarterly"``). The panel's first bar is the first bar of its
    period present, so it is a scheduled bar too. An *exit* rebalance happens at
    any bar where a held constituent's data has ended (see Exits).

Eligibility
    At a scheduled rebalance ``r`` a constituent is eligible when it has a price
    at ``r`` and ``ts_r - first_ts_i >= min_history_days`` days, ``first_ts_i``
    being its first priced bar. New constituents enter only at scheduled
    rebalances; a held constituent stays until its data ends.

Start
    The start bar ``t0`` is the first scheduled rebalance with at least
    ``min_constituents`` eligible constituents; ``I[t0] = base_level`` and
    ``I[t] = NaN`` for ``t < t0``. Afterwards the index carries on with fewer
    constituents if exits leave fewer (but at least one).

Level (chain-linked units)
    At a rebalance ``r``, once ``I[r]`` is known:
    ``q_i = w_i I[r] / P[r,i]``. Between rebalances
    ``I[t] = sum_i q_i P[t,i]``, so every rebalance is self-financing and the
    level is continuous through it.

Exits
    When a held constituent has no price at bar ``t`` (its data ended after
    ``t-1``) it leaves the index at its last known price: at ``t`` its value is
    frozen at ``q_i P[t-1,i]``, i.e.
    ``I[t] = sum_{i priced at t} q_i P[t,i] + sum_{i exited at t} q_i P[t-1,i]``,
    which uses only prices up to ``t`` and keeps ``I`` continuous. The index
    rebalances at ``t`` among the remaining held constituents with the same
    weighting rule (at a bar that is also scheduled, new eligible constituents
    join too). An ``"exit"`` event and a weights row are recorded at ``t``. If no
    constituent remains, :class:`~backtest.errors.DataError` is raised.

Weights (set at ``r`` from data at bars ``<= r`` only)
    * ``"equal"``: ``w_i = 1 / n``.
    * ``"inverse_vol"``: ``w_i = (1/sigma_i) / sum_j (1/sigma_j)`` with
      ``sigma_i`` the sample standard deviation (``ddof=1``) of the log returns
      ``ln(P[t,i] / P[t-1,i])`` of the bars ``t`` with
      ``ts_r - vol_lookback_days < ts_t <= ts_r`` (i.e. from the closes in the
      closed window ``[ts_r - L, ts_r]``); returns touching a bar before the
      constituent's first price are skipped, at least two are required.
    * ``"market_cap"``: ``w_i = cap_i / sum_j cap_j`` with ``cap_i`` the latest
      non-missing market cap of ``i`` at a timestamp ``<= ts_r`` (as of ``r``,
      never a later row).

    Then, if ``max_weight = c`` is set, weights are capped at ``c`` and the
    excess redistributed pro rata among the uncapped names, repeated until none
    exceeds ``c`` (:func:`backtest.index_kernels.cap_weights`); e.g.
    ``(0.5, 0.3, 0.2)`` with ``c = 0.4`` becomes ``(0.4, 0.36, 0.24)``. With
    ``n`` constituents the cap can only hold if ``n c >= 1``; when a rebalance
    has fewer constituents, :class:`~backtest.errors.ConfigError`
    (``index.max_weight``) is raised naming the bar, ``n`` and the cap -- raise
    the cap, or end the panel before exits thin the basket that far.

Intrabar high
    ``high[t] = sum_i q_i H[t,i]`` with the units held over bar ``t`` (those set
    at the last rebalance before ``t``) and ``H`` the constituents' highs;
    constituents exiting at ``t`` count at their frozen value. It bounds the
    level from above within the bar (for margin checks on a short hedge); NaN
    when a high of a priced held constituent is unknown, at the start bar, and
    everywhere when no highs are given.

No look-ahead
    Eligibility, weights and units at ``r`` use bars ``<= r``; ``I[t]`` uses
    prices ``<= t``. Exits are detected at the first bar without a price, not
    at the constituent's last bar.

Default basket
--------------
:data:`DEFAULT_AI_BASKET` -- AI compute, data and network tokens in the bundled
hourly file, excluding FET (the default hedged coin):

=======  ==============================  ==========================================
symbol   project                         role
=======  ==============================  ==========================================
NEAR     NEAR Protocol                   L1 chain positioned for AI agents (AI network)
RNDR     Render Network (old ticker)     decentralised GPU rendering / compute
RENDER   Render Network (new ticker)     decentralised GPU rendering / compute
TAO      Bittensor                       decentralised machine-learning network
FIL      Filecoin                        decentralised storage (datasets, models)
AR       Arweave                         permanent data storage (+ AO compute)
GRT      The Graph                       blockchain data indexing and queries
ICP      Internet Computer               decentralised cloud compute (on-chain AI)
LPT      Livepeer                        video transcoding / AI video compute
THETA    Theta Network                   edge video delivery and GPU compute
ROSE     Oasis Network                   confidential (privacy-preserving) compute
OCEAN    Ocean Protocol                  data marketplace for AI
AGIX     SingularityNET                  AI-services marketplace (AI network)
=======  ==============================  ==========================================

RNDR and RENDER are the same token after a ticker migration; with
``index.migrations = true`` (the default) they are one constituent, RENDER
(see Ticker migrations). AGIX and OCEAN (merged into FET/ASI in 2024) end
2023-12-30 in the bundled data and exit then, because the data ends.

Ticker migrations
-----------------
:data:`TICKER_MIGRATIONS` lists tickers that changed while the token stayed the
same. :func:`apply_migrations` joins the old ticker's closes (divided by
``ratio``, new tokens per old one) and the new ticker's into one column named
by the new ticker: the old closes up to the new ticker's first bar, then the
new ones. The swap window between the old ticker's last bar and the new one's
first (trading suspended for the swap) is bridged at the old ticker's last
close when it is at most ``max_bridge_days`` long; a longer hole is left
empty, and the constituent leaves the index at its first unpriced bar
(``"data_end"``) and re-enters at the first scheduled rebalance priced again,
its history counted from the old ticker's first bar (no new-listing wait).
Market caps are joined the same way (old ticker's rows, then the new one's).

=======  =======  ==========  ===============================================
old      new      effective   evidence in the bundled data
=======  =======  ==========  ===============================================
RNDR     RENDER   2024-07-26  RNDR hourly closes end 2024-07-22 02:00 UTC
                              (binance_spot_1h_close_RNDR_2024-06_07.parquet),
                              RENDER's start 2024-07-26 08:00 UTC; CMC: RNDR
                              to 2024-07-01, RENDER from 2024-08-01; 1:1 swap
=======  =======  ==========  ===============================================

Not applied: AGIX and OCEAN -> FET (the ASI merger of July 2024, 0.433350 FET
per AGIX, 0.433226 FET per OCEAN) is a merger into another token, not a
rename, FET is the default hedged coin (joining it into the index would put
the hedge's own coin into its index) and no AGIX/OCEAN prices after
2023-12-30 are bundled. MATIC -> POL is not in the bundled data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np
import pandas as pd

from backtest.errors import ConfigError, DataError
from backtest.index_kernels import (
    STATUS_NO_START_REBALANCE,
    STATUS_OK,
    STATUS_UNPRICED_HOLDING,
    cap_weights,
    index_level_nb,
)

__all__ = [
    "TickerMigration",
    "TICKER_MIGRATIONS",
    "MigrationNote",
    "apply_migrations",
    "migrate_caps",
    "load_snapshot_caps",
    "Weighting",
    "Schedule",
    "IndexSpec",
    "IndexResult",
    "DEFAULT_AI_BASKET",
    "default_index_spec",
    "build_index",
    "read_market_caps",
]

Weighting = Literal["equal", "inverse_vol", "market_cap"]
Schedule = Literal["daily", "weekly", "monthly", "quarterly"]

#: AI compute / data / network tokens of the bundled hourly file, FET excluded
#: (see the module docstring for what each one is, and for RNDR -> RENDER).
DEFAULT_AI_BASKET: Final[tuple[str, ...]] = (
    "NEAR",
    "RNDR",
    "RENDER",
    "TAO",
    "FIL",
    "AR",
    "GRT",
    "ICP",
    "LPT",
    "THETA",
    "ROSE",
    "OCEAN",
    "AGIX",
)

_CLOSE_LABEL: Final = "<close>"
_HIGH_LABEL: Final = "<high>"
_CAPS_LABEL: Final = "<market_caps>"


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class IndexSpec:
    """How the index is built (validated on construction).

    Parameters
    ----------
    constituents : tuple of str
        Candidate symbols (columns of the close panel), no duplicates. A list is
        accepted and stored as a tuple.
    weighting : {"equal", "inverse_vol", "market_cap"}
        Weighting rule at each rebalance (see the module docstring).
    rebalance : {"daily", "weekly", "monthly", "quarterly"}
        Scheduled rebalance calendar (first bar of each UTC period).
    min_history_days : int
        Days of the constituent's own history required at a rebalance
        (``ts_r - first_ts >= min_history_days`` days), >= 0.
    max_weight : float or None
        Cap on any weight, in (0, 1]; None for no cap. Must allow
        ``len(constituents) * max_weight >= 1``.
    vol_lookback_days : int
        Window of the ``inverse_vol`` volatility estimate, in days, >= 2 (as ``[index]``).
    min_constituents : int
        Eligible constituents needed at the start rebalance, in
        [1, len(constituents)].
    base_level : float
        Level at the start bar (USD), finite and > 0.
    cap_max_missing : int or None
        ``market_cap`` weighting only. None: a constituent uses its latest cap at
        or before the rebalance however old, and one without any is an error.
        An integer ``m``: the caps' rows form a snapshot calendar (the distinct
        timestamps of the caps frame); a constituent whose latest cap at or before
        a scheduled rebalance is followed by more than ``m`` snapshots (up to the
        rebalance) without a value of its own -- or that has no cap yet -- is not
        eligible, and if held it leaves at that rebalance (event cause
        ``"no_market_cap"``). With ``m = 1`` a token missing from one monthly
        snapshot keeps its last known cap; missing from two, it drops out.

    Raises
    ------
    ConfigError
        With key ``index.<field>`` for any invalid field.
    """

    constituents: tuple[str, ...]
    weighting: Weighting = "equal"
    rebalance: Schedule = "monthly"
    min_history_days: int = 30
    max_weight: float | None = None
    vol_lookback_days: int = 30
    min_constituents: int = 3
    base_level: float = 1000.0
    cap_max_missing: int | None = None

    def __post_init__(self) -> None:
        cons = self.constituents
        if isinstance(cons, str) or not isinstance(cons, Sequence):
            raise ConfigError("index.constituents", f"expected a sequence of symbols, got {cons!r}")
        cons = tuple(cons)
        if not cons:
            raise ConfigError("index.constituents", "must name at least one symbol")
        for symbol in cons:
            if not isinstance(symbol, str) or not symbol.strip():
                raise ConfigError("index.constituents", f"expected non-empty symbol strings, got {symbol!r}")
        duplicates = sorted({s for s in cons if cons.count(s) > 1})
        if duplicates:
            raise ConfigError("index.constituents", f"duplicate symbols: {', '.join(duplicates)}")
        object.__setattr__(self, "constituents", cons)

        if self.weighting not in get_args(Weighting):
            raise ConfigError("index.weighting", f"expected one of {get_args(Weighting)}, got {self.weighting!r}")
        if self.rebalance not in get_args(Schedule):
            raise ConfigError("index.rebalance", f"expected one of {get_args(Schedule)}, got {self.rebalance!r}")
        if not _is_int(self.min_history_days) or self.min_history_days < 0:
            raise ConfigError(
                "index.min_history_days", f"expected an integer number of days >= 0, got {self.min_history_days!r}"
            )
        if not _is_int(self.vol_lookback_days) or self.vol_lookback_days < 2:
            raise ConfigError(
                "index.vol_lookback_days", f"expected an integer number of days >= 2, got {self.vol_lookback_days!r}"
            )
        if not _is_int(self.min_constituents) or not 1 <= self.min_constituents <= len(cons):
            raise ConfigError(
                "index.min_constituents",
                f"expected an integer in [1, {len(cons)}] (the number of constituents), got {self.min_constituents!r}",
            )
        if self.max_weight is not None:
            if not _is_real(self.max_weight) or not 0.0 < float(self.max_weight) <= 1.0:
                raise ConfigError("index.max_weight", f"expected a fraction in (0, 1] or None, got {self.max_weight!r}")
            if len(cons) * float(self.max_weight) < 1.0 - 1e-12:
                raise ConfigError(
                    "index.max_weight",
                    f"a cap of {self.max_weight} can never hold with {len(cons)} constituents "
                    f"(needs n * max_weight >= 1, i.e. max_weight >= {1 / len(cons):.4g})",
                )
        if not _is_real(self.base_level) or not (math.isfinite(self.base_level) and self.base_level > 0):
            raise ConfigError("index.base_level", f"expected a finite level > 0, got {self.base_level!r}")
        if self.cap_max_missing is not None and (not _is_int(self.cap_max_missing) or self.cap_max_missing < 0):
            raise ConfigError(
                "index.market_caps_max_missing", f"expected an integer number of snapshots >= 0, got {self.cap_max_missing!r}"
            )


@dataclass(frozen=True, eq=False)
class IndexResult:
    """A built index (immutable; pandas members should be treated as read-only).

    Attributes
    ----------
    level : Series
        ``I[t]`` (USD) on the panel's full UTC index; NaN before ``start``.
    high : Series
        Upper bound of the intrabar level, ``sum_i q_i H[t,i]`` over the units
        held during bar ``t``; NaN where any needed high is unknown, at
        ``start`` and everywhere when no highs were given.
    weights : DataFrame
        One row per rebalance (scheduled from ``start`` on, and exit-triggered),
        indexed by ``ts``; columns = ``spec.constituents``; target weights, 0
        when not held; rows sum to 1.
    units : DataFrame
        Same rows and columns: units ``q_i`` held from that rebalance on.
    events : DataFrame
        Columns ``ts``, ``symbol``, ``event`` (``"enter"`` / ``"exit"``),
        ``reason`` (text), ``cause`` (``"data_end"``: the price series stopped --
        the data, not the market, took it out; ``"no_market_cap"``; ``"eligible"``
        for entries) and ``last_price_ts`` (data-end exits: the last priced bar),
        in time order (exits before entries at the same bar).
    start : Timestamp
        First bar with a level.
    spec : IndexSpec
        The specification the index was built with.
    held_weights : DataFrame
        Per-bar weights held, ``q_i P[t,i] / I[t]`` (targets on rebalance bars,
        drifting between them; 0 when not held, NaN before ``start``); same
        columns as ``weights``, the panel's full UTC index. For a figure of
        weights over time: ``result.held_weights.loc[result.start:]``; the count
        held is ``(held_weights > 0).sum(axis=1)``.
    """

    level: pd.Series
    high: pd.Series
    weights: pd.DataFrame
    units: pd.DataFrame
    events: pd.DataFrame
    start: pd.Timestamp
    spec: IndexSpec
    held_weights: pd.DataFrame | None = None


def default_index_spec() -> IndexSpec:
    """The default AI-infrastructure index.

    :data:`DEFAULT_AI_BASKET`, equal weights, monthly rebalancing, 30 days of
    history before entry, weights capped at 30 % (the top weight of the
    Grayscale Decentralized AI Fund sits near 30 %), at least 3 constituents
    to start.

    Returns
    -------
    IndexSpec
    """
    return IndexSpec(
        constituents=DEFAULT_AI_BASKET,
        weighting="equal",
        rebalance="monthly",
        min_history_days=30,
        max_weight=0.30,
        min_constituents=3,
    )


# --------------------------------------------------------------------------- inputs


def _utc_index(index: pd.Index, label: str) -> pd.DatetimeIndex:
    """The index as a unique, increasing UTC DatetimeIndex, else DataError."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(label, f"expected a DatetimeIndex of UTC timestamps, got {type(index).__name__}")
    if index.tz is None:
        raise DataError(label, "timestamps carry no time zone; expected UTC (tz-aware) timestamps")
    index = index.tz_convert("UTC")
    if index.hasnans:
        raise DataError(label, "missing timestamp (NaT)", row=int(np.flatnonzero(index.isna())[0]))
    if index.has_duplicates:
        row = int(np.flatnonzero(index.duplicated())[0])
        raise DataError(label, "duplicate timestamp", row=row, detail=str(index[row]))
    if not index.is_monotonic_increasing:
        row = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise DataError(label, "timestamps are not in increasing order", row=row, detail=str(index[row]))
    return index


def _float_values(frame: pd.DataFrame, columns: Sequence[str], label: str) -> np.ndarray:
    for column in columns:
        if not (pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])):
            raise DataError(label, f"expected numeric values, got dtype {frame[column].dtype}", column=column)
    return np.ascontiguousarray(frame[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan))


def _check_positive(values: np.ndarray, columns: Sequence[str], index: pd.DatetimeIndex, label: str, what: str) -> None:
    """DataError at the first value that is present but not finite and > 0."""
    bad = ~np.isnan(values) & ~(np.isfinite(values) & (values > 0))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            label,
            f"expected a finite positive {what}, got {values[row, col]!r}",
            column=columns[col],
            row=int(row),
            detail=str(index[row]),
        )


def _validate_close(
    close: pd.DataFrame, spec: IndexSpec, gaps_allowed: frozenset[str] = frozenset()
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    if not isinstance(close, pd.DataFrame):
        raise DataError(_CLOSE_LABEL, f"expected a wide DataFrame of closes, got {type(close).__name__}")
    if len(close) == 0:
        raise DataError(_CLOSE_LABEL, "no bars")
    index = _utc_index(close.index, _CLOSE_LABEL)
    if len(index) > 2:
        steps = np.diff(index.asi8)
        if np.any(steps != steps[0]):
            row = int(np.flatnonzero(steps != steps[0])[0]) + 1
            raise DataError(
                _CLOSE_LABEL,
                f"bars are not on a regular grid: step {index[row] - index[row - 1]} "
                f"after {index[1] - index[0]} (fill gaps before building the index)",
                row=row,
                detail=str(index[row]),
            )
    if close.columns.has_duplicates:
        duplicate = str(close.columns[close.columns.duplicated()][0])
        raise DataError(_CLOSE_LABEL, "duplicate symbol columns", column=duplicate)
    for symbol in spec.constituents:
        if symbol not in close.columns:
            raise DataError(_CLOSE_LABEL, "constituent missing from the close panel", column=symbol)
    prices = _float_values(close, spec.constituents, _CLOSE_LABEL)
    _check_positive(prices, spec.constituents, index, _CLOSE_LABEL, "close")
    priced = ~np.isnan(prices)
    for col, symbol in enumerate(spec.constituents):
        rows = np.flatnonzero(priced[:, col])
        if symbol not in gaps_allowed and len(rows) and len(rows) != rows[-1] - rows[0] + 1:
            gap = rows[0] + int(np.flatnonzero(~priced[rows[0] : rows[-1] + 1, col])[0])
            raise DataError(
                _CLOSE_LABEL,
                "missing close inside the symbol's life (NaN is allowed only before its first "
                "and after its last bar; forward-fill gaps first)",
                column=symbol,
                row=gap,
                detail=str(index[gap]),
            )
    return index, prices


def _validate_high(
    high: pd.DataFrame, index: pd.DatetimeIndex, prices: np.ndarray, spec: IndexSpec
) -> np.ndarray:
    if not isinstance(high, pd.DataFrame):
        raise DataError(_HIGH_LABEL, f"expected a wide DataFrame of highs, got {type(high).__name__}")
    high_index = _utc_index(high.index, _HIGH_LABEL)
    present = [s for s in spec.constituents if s in high.columns]
    aligned = high[present].set_axis(high_index, axis=0).reindex(index=index, columns=list(spec.constituents))
    values = _float_values(aligned, spec.constituents, _HIGH_LABEL)
    _check_positive(values, spec.constituents, index, _HIGH_LABEL, "high")
    below = values < prices * (1.0 - 1e-12)
    if below.any():
        row, col = np.argwhere(below)[0]
        raise DataError(
            _HIGH_LABEL,
            f"high {values[row, col]!r} is below the close {prices[row, col]!r}",
            column=spec.constituents[col],
            row=int(high_index.get_loc(index[row])),
            detail=str(index[row]),
        )
    return values


@dataclass(frozen=True)
class _CapSeries:
    """Non-missing market caps of one symbol, for as-of lookups."""

    times: pd.DatetimeIndex
    values: np.ndarray


def _validate_caps(market_caps: pd.DataFrame, spec: IndexSpec) -> dict[str, _CapSeries]:
    if not isinstance(market_caps, pd.DataFrame):
        raise DataError(_CAPS_LABEL, f"expected a wide DataFrame of market caps, got {type(market_caps).__name__}")
    index = _utc_index(market_caps.index, _CAPS_LABEL)
    present = [s for s in spec.constituents if s in market_caps.columns]
    values = _float_values(market_caps, present, _CAPS_LABEL)
    _check_positive(values, present, index, _CAPS_LABEL, "market cap")
    out = {}
    for col, symbol in enumerate(present):
        known = ~np.isnan(values[:, col])
        out[symbol] = _CapSeries(index[known], values[known, col])
    return out


# --------------------------------------------------------------------------- planning


def _scheduled_bars(index: pd.DatetimeIndex, schedule: Schedule) -> np.ndarray:
    """Boolean mask of the first bar of each UTC day / ISO week / month / quarter."""
    days = ((index.floor("D") - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(days=1)).to_numpy()
    if schedule == "daily":
        period = days
    elif schedule == "weekly":
        period = (days + 3) // 7  # 1970-01-01 was a Thursday: weeks run Monday..Sunday
    elif schedule == "monthly":
        period = index.year.to_numpy() * 12 + index.month.to_numpy()
    else:
        period = index.year.to_numpy() * 4 + (index.month.to_numpy() - 1) // 3
    period = np.asarray(period, dtype=np.int64)
    mask = np.ones(len(index), dtype=bool)
    mask[1:] = period[1:] != period[:-1]
    return mask


def _raw_weights(
    r: int,
    members: np.ndarray,
    spec: IndexSpec,
    index: pd.DatetimeIndex,
    log_returns: np.ndarray | None,
    caps: dict[str, _CapSeries] | None,
) -> np.ndarray:
    """Unnormalised weights of the members at rebalance bar ``r`` (bars <= r only)."""
    raw = np.zeros(members.shape)
    cols = np.flatnonzero(members)
    ts = index[r]
    if spec.weighting == "equal":
        raw[cols] = 1.0
    elif spec.weighting == "inverse_vol":
        assert log_returns is not None
        first = int(index.searchsorted(ts - pd.Timedelta(days=spec.vol_lookback_days), side="left"))
        window = log_returns[first + 1 : r + 1]
        for col in cols:
            rets = window[:, col]
            rets = rets[~np.isnan(rets)]
            symbol = spec.constituents[col]
            if len(rets) < 2:
                raise ConfigError(
                    "index.min_history_days",
                    f"inverse_vol needs at least 2 log returns to estimate the volatility of {symbol} "
                    f"at {ts}, found {len(rets)}; raise min_history_days",
                )
            sigma = float(np.std(rets, ddof=1))
            if not sigma > 0.0:
                raise DataError(
                    _CLOSE_LABEL,
                    f"zero volatility over the {spec.vol_lookback_days}-day window ending {ts} "
                    "(constant price); inverse_vol weights are undefined",
                    column=symbol,
                )
            raw[col] = 1.0 / sigma
    else:
        assert caps is not None
        for col in cols:
            symbol = spec.constituents[col]
            series = caps.get(symbol)
            pos = -1 if series is None else int(series.times.searchsorted(ts, side="right")) - 1
            if pos < 0:
                raise DataError(
                    _CAPS_LABEL,
                    f"no market cap at or before {ts} for eligible constituent {symbol}",
                    column=symbol,
                    detail=str(ts),
                )
            raw[col] = series.values[pos]
    return raw


def build_index(
    close: pd.DataFrame,
    spec: IndexSpec,
    *,
    high: pd.DataFrame | None = None,
    market_caps: pd.DataFrame | None = None,
    gaps_allowed: Sequence[str] = (),
) -> IndexResult:
    """Build the chain-linked units index described in the module docstring.

    Parameters
    ----------
    close : DataFrame
        Wide closes (USD): a UTC DatetimeIndex on a regular grid, one column per
        symbol (other columns are ignored). NaN only before a symbol's first bar
        and after its last.
    spec : IndexSpec
        Constituents and rules.
    high : DataFrame, optional
        Wide bar highs (same layout; reindexed to ``close``'s bars, missing
        bars or symbols count as unknown). Needed for ``IndexResult.high``.
    market_caps : DataFrame, optional
        Wide market caps (USD) indexed by UTC timestamps (any times, not
        necessarily on the grid), e.g. from :func:`read_market_caps`. Required
        for, and only accepted with, ``weighting="market_cap"``. At a rebalance
        at ``r`` the latest non-missing value at a time ``<= r`` is used.
    gaps_allowed : sequence of str, optional
        Constituents whose closes may have NaN runs inside their life (a merged
        ticker migration with a data hole, see :func:`apply_migrations`): such a
        constituent leaves the index at the first bar without a price (cause
        ``"data_end"``) and may re-enter at a later scheduled rebalance, its
        history counted from its first price ever.

    Returns
    -------
    IndexResult

    Raises
    ------
    DataError
        Malformed panels; no scheduled rebalance with ``min_constituents``
        eligible; no constituent left after exits; missing market cap of an
        eligible constituent (naming symbol and time); zero volatility.
    ConfigError
        ``market_caps`` missing for, or given without, ``"market_cap"``
        weighting; ``index.max_weight`` infeasible at a rebalance
        (``n * max_weight < 1``); ``index.min_history_days`` too short for an
        ``inverse_vol`` estimate.
    """
    if not isinstance(spec, IndexSpec):
        raise TypeError(f"spec must be an IndexSpec, got {type(spec).__name__}")
    _check_caps_given(spec, market_caps)
    index, prices = _validate_close(close, spec, frozenset(gaps_allowed))
    highs = np.full(prices.shape, np.nan) if high is None else _validate_high(high, index, prices, spec)
    caps = None if market_caps is None else _validate_caps(market_caps, spec)
    plan = _holdings(prices, _eligibility(index, prices, spec, caps, market_caps))
    weights = _target_weights(plan, index, prices, spec, caps)
    level, level_high, units = _run_kernel(plan, weights, index, prices, highs, spec)

    columns = pd.Index(spec.constituents, dtype=object)
    reb_index = pd.DatetimeIndex(index[plan.reb_pos], name="ts")
    return IndexResult(
        level=pd.Series(level, index=index, name="level"),
        high=pd.Series(level_high, index=index, name="high"),
        weights=pd.DataFrame(weights, index=reb_index, columns=columns),
        units=pd.DataFrame(units, index=reb_index, columns=columns),
        events=_events(index, spec, plan.exits, plan.held_after, plan.held_before, plan.scheduled, plan.start),
        start=index[plan.start],
        spec=spec,
        held_weights=_held_weights(index, prices, level, units, plan.reb_pos, spec),
    )


@dataclass(frozen=True)
class _Eligibility:
    """Eligibility at the scheduled rebalances.

    ``scheduled`` marks the scheduled bars (n_bars,), ``sched_pos`` their positions (K,),
    ``eligible[k, i]`` whether constituent ``i`` is eligible at ``sched_pos[k]`` (K, N), and
    ``start`` is the start bar ``t0``.
    """

    scheduled: np.ndarray
    sched_pos: np.ndarray
    eligible: np.ndarray
    start: int


@dataclass(frozen=True)
class _Plan:
    """Holdings and rebalance bars of the index.

    ``held_after[t, i]`` / ``held_before[t, i]``: constituent ``i`` is held after / before the
    rebalance at bar ``t`` (n_bars, N); ``exits[t, i]``: a held constituent without a price at
    ``t``; ``reb_pos``: the rebalance bars (scheduled from ``start`` on, plus exit bars).
    """

    scheduled: np.ndarray
    start: int
    held_after: np.ndarray
    held_before: np.ndarray
    exits: np.ndarray
    reb_pos: np.ndarray


def _check_caps_given(spec: IndexSpec, market_caps: pd.DataFrame | None) -> None:
    """Market caps are required for, and only accepted with, ``weighting="market_cap"``.

    Raises
    ------
    ConfigError
        Under the key ``index.weighting``.
    """
    if spec.weighting == "market_cap" and market_caps is None:
        raise ConfigError("index.weighting", "'market_cap' weighting needs market caps (pass market_caps=)")
    if spec.weighting != "market_cap" and market_caps is not None:
        raise ConfigError(
            "index.weighting", f"market_caps were given but weighting is {spec.weighting!r}; they would be ignored"
        )


def _eligibility(
    index: pd.DatetimeIndex,
    prices: np.ndarray,
    spec: IndexSpec,
    caps: dict[str, _CapSeries] | None,
    market_caps: pd.DataFrame | None,
) -> _Eligibility:
    """Eligibility at the scheduled bars and the start bar.

    Constituent ``i`` is eligible at scheduled bar ``r`` when ``P[r, i]`` is known,
    ``ts_r - first_ts_i >= min_history_days`` and (with ``cap_max_missing``) its market cap is
    fresh enough; the start is the first scheduled bar with ``>= min_constituents`` eligible.

    Raises
    ------
    DataError
        No scheduled rebalance has ``min_constituents`` eligible constituents.
    """
    n_sym = prices.shape[1]
    days = pd.Timedelta(days=spec.min_history_days)
    priced = ~np.isnan(prices)
    has_data = priced.any(axis=0)
    first_pos = np.where(has_data, priced.argmax(axis=0), 0)
    scheduled = _scheduled_bars(index, spec.rebalance)
    sched_pos = np.flatnonzero(scheduled)
    old_enough = np.stack(
        [
            (index[sched_pos] - index[first_pos[col]]) >= days if has_data[col] else np.zeros(len(sched_pos), bool)
            for col in range(n_sym)
        ],
        axis=1,
    )
    eligible = priced[sched_pos] & old_enough  # (K, N)
    if caps is not None and spec.cap_max_missing is not None:
        eligible &= _caps_fresh(caps, _snapshot_calendar(market_caps), index[sched_pos], spec)
    enough = eligible.sum(axis=1) >= spec.min_constituents
    if not enough.any():
        raise DataError(
            _CLOSE_LABEL,
            f"no scheduled ({spec.rebalance}) rebalance has at least {spec.min_constituents} eligible "
            f"constituents (price at the bar and >= {spec.min_history_days} days of history)",
        )
    return _Eligibility(scheduled, sched_pos, eligible, int(sched_pos[int(enough.argmax())]))


def _holdings(prices: np.ndarray, elig: _Eligibility) -> _Plan:
    """Holdings: members of the latest scheduled rebalance that still have a price.

    A constituent is held after bar ``t`` when it was eligible at the latest scheduled bar
    ``s <= t`` and priced on every bar of ``[s, t]`` (a constituent whose prices stop and resume
    re-enters only at a scheduled rebalance). Rebalances: scheduled bars from ``start`` on and
    every bar where a held constituent lost its price.
    """
    n_bars = prices.shape[0]
    priced = ~np.isnan(prices)
    scheduled, sched_pos, start = elig.scheduled, elig.sched_pos, elig.start
    sched_row = np.cumsum(scheduled) - 1  # bar 0 is always scheduled
    last_unpriced = np.maximum.accumulate(np.where(priced, -1, np.arange(n_bars)[:, None]), axis=0)
    held_after = elig.eligible[sched_row] & (last_unpriced < sched_pos[sched_row][:, None])
    held_after[:start] = False
    held_before = np.zeros_like(held_after)
    held_before[1:] = held_after[:-1]
    exits = held_before & ~priced
    rebalance = np.zeros(n_bars, dtype=bool)
    rebalance[start:] = scheduled[start:]
    rebalance |= exits.any(axis=1)
    return _Plan(scheduled, start, held_after, held_before, exits, np.flatnonzero(rebalance))


def _target_weights(
    plan: _Plan,
    index: pd.DatetimeIndex,
    prices: np.ndarray,
    spec: IndexSpec,
    caps: dict[str, _CapSeries] | None,
) -> np.ndarray:
    """Target weights ``w[k, i]`` at each rebalance ``plan.reb_pos[k]``.

    ``w = raw / sum(raw)`` over the held members (see :func:`_raw_weights`), then capped at
    ``max_weight`` by :func:`~backtest.index_kernels.cap_weights`.

    Raises
    ------
    DataError
        No constituent held at a rebalance.
    ConfigError
        ``n * max_weight < 1`` at a rebalance (key ``index.max_weight``).
    """
    log_returns = None
    if spec.weighting == "inverse_vol":
        log_returns = np.full(prices.shape, np.nan)
        with np.errstate(invalid="ignore"):
            log_returns[1:] = np.log(prices[1:] / prices[:-1])
    weights = np.zeros((len(plan.reb_pos), prices.shape[1]))
    for k, r in enumerate(plan.reb_pos):
        members = plan.held_after[r]
        if not members.any():
            raise DataError(
                _CLOSE_LABEL,
                f"no constituent left at {index[r]}: the data of every held constituent has ended",
                row=int(r),
                detail=str(index[r]),
            )
        raw = _raw_weights(int(r), members, spec, index, log_returns, caps)
        w = raw / raw.sum()
        if spec.max_weight is not None:
            n = int(members.sum())
            if n * spec.max_weight < 1.0 - 1e-12:
                names = ", ".join(np.asarray(spec.constituents)[members])
                raise ConfigError(
                    "index.max_weight",
                    f"at the rebalance at {index[r]} only {n} constituents are held ({names}); "
                    f"a cap of {spec.max_weight} needs at least {math.ceil(1 / spec.max_weight - 1e-12)} "
                    "(n * max_weight >= 1): raise max_weight or end the panel earlier",
                )
            w = cap_weights(w, float(spec.max_weight))
        weights[k] = w
    return weights


def _run_kernel(
    plan: _Plan,
    weights: np.ndarray,
    index: pd.DatetimeIndex,
    prices: np.ndarray,
    highs: np.ndarray,
    spec: IndexSpec,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run :func:`~backtest.index_kernels.index_level_nb` on the plan.

    Returns
    -------
    level, level_high : ndarray
        ``I[t]`` and the bar-high level (n_bars,).
    units : ndarray
        ``q[k, i]`` set at each rebalance (K, N).

    Raises
    ------
    RuntimeError
        The kernel reports an inconsistent plan (unreachable; kept as a guard).
    """
    n_bars = prices.shape[0]
    rebalance_row = np.full(n_bars, -1, dtype=np.int64)
    rebalance_row[plan.reb_pos] = np.arange(len(plan.reb_pos))
    level, level_high, units, status = index_level_nb(
        prices, np.ascontiguousarray(highs), rebalance_row, weights, plan.start, float(spec.base_level)
    )
    if status[0] != STATUS_OK:  # the plan above makes this unreachable; kept as a guard
        code, bar, col = (int(x) for x in status)
        what = {
            STATUS_UNPRICED_HOLDING: "held constituent without a price outside a rebalance",
            STATUS_NO_START_REBALANCE: "start bar is not a rebalance bar",
        }.get(code, "positive target weight without a price")
        raise RuntimeError(f"index kernel: {what} at bar {bar} ({index[bar]}), column {spec.constituents[col]}")
    return level, level_high, units


def _events(
    index: pd.DatetimeIndex,
    spec: IndexSpec,
    exits: np.ndarray,
    held_after: np.ndarray,
    held_before: np.ndarray,
    scheduled: np.ndarray,
    start: int,
) -> pd.DataFrame:
    """Entries and exits with a cause: ``"data_end"`` (the price series stopped: the
    data, not the market, took the constituent out; ``last_price_ts`` says when),
    ``"no_market_cap"`` (left at a scheduled rebalance without a fresh enough cap)
    or ``"eligible"`` (an entry)."""
    entries = held_after & ~held_before
    entries[:start] = False
    entries[~scheduled] = False
    dropped = held_before & ~held_after & ~exits  # left at a scheduled rebalance while still priced
    rows: list[tuple[pd.Timestamp, str, str, str, str, pd.Timestamp | None]] = []
    for bar in np.flatnonzero(exits.any(axis=1) | entries.any(axis=1) | dropped.any(axis=1)):
        for col in np.flatnonzero(exits[bar]):
            last = index[bar - 1]  # an exit at bar t: the constituent's last price was at t-1
            reason = f"data ended (last price {last:%Y-%m-%d %H:%M} UTC)"
            rows.append((index[bar], spec.constituents[col], "exit", reason, "data_end", last))
        for col in np.flatnonzero(dropped[bar]):
            reason = f"no market cap in more than {spec.cap_max_missing} snapshot(s) in a row (index.market_caps_max_missing)"
            rows.append((index[bar], spec.constituents[col], "exit", reason, "no_market_cap", None))
        for col in np.flatnonzero(entries[bar]):
            reason = f"history >= {spec.min_history_days} days" + (", market cap known" if spec.weighting == "market_cap" else "")
            rows.append((index[bar], spec.constituents[col], "enter", reason, "eligible", None))
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex([row[0] for row in rows], dtype=index.dtype),
            "symbol": pd.array([row[1] for row in rows], dtype="str"),
            "event": pd.array([row[2] for row in rows], dtype="str"),
            "reason": pd.array([row[3] for row in rows], dtype="str"),
            "cause": pd.array([row[4] for row in rows], dtype="str"),
            "last_price_ts": pd.DatetimeIndex([row[5] for row in rows], dtype=index.dtype),
        }
    )


def _held_weights(
    index: pd.DatetimeIndex, prices: np.ndarray, level: np.ndarray, units: np.ndarray, reb_pos: np.ndarray,
    spec: IndexSpec,
) -> pd.DataFrame:
    """Per-bar weights actually held: ``q_i P[t,i] / I[t]`` with the units set at the
    latest rebalance at or before ``t`` (so the targets on rebalance bars, drifting
    between them); 0 where not held, NaN before the start."""
    row = np.searchsorted(reb_pos, np.arange(len(index)), side="right") - 1
    q = np.where(row[:, None] >= 0, units[np.maximum(row, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        w = np.where(q > 0, q * prices / level[:, None], np.where(np.isnan(q), np.nan, 0.0))
    return pd.DataFrame(w, index=index, columns=pd.Index(spec.constituents, dtype=object))


def _snapshot_calendar(market_caps: pd.DataFrame | None) -> pd.DatetimeIndex:
    """The caps frame's snapshot times: rows holding at least one value."""
    assert market_caps is not None
    rows = market_caps.notna().any(axis=1).to_numpy()
    return pd.DatetimeIndex(market_caps.index[rows]).tz_convert("UTC").sort_values()


def _caps_fresh(
    caps: dict[str, _CapSeries], calendar: pd.DatetimeIndex, when: pd.DatetimeIndex, spec: IndexSpec
) -> np.ndarray:
    """``ok[k, i]``: constituent i has a cap at or before ``when[k]`` followed by at most
    ``spec.cap_max_missing`` snapshots of the calendar (up to ``when[k]``) without its own value."""
    assert spec.cap_max_missing is not None
    ok = np.zeros((len(when), len(spec.constituents)), dtype=bool)
    n_cal = calendar.searchsorted(when, side="right")
    for col, symbol in enumerate(spec.constituents):
        series = caps.get(symbol)
        if series is None or len(series.times) == 0:
            continue
        pos = series.times.searchsorted(when, side="right") - 1
        known = pos >= 0
        last = series.times[np.maximum(pos, 0)]
        missed = n_cal - calendar.searchsorted(last, side="right")
        ok[:, col] = known & (missed <= spec.cap_max_missing)
    return ok


# --------------------------------------------------------------------------- market caps file

_TZ_SUFFIX = re.compile(r"(Z|[+-]\d{2}(:?\d{2})?)$", re.IGNORECASE)


def _parse_utc(values: pd.Series, file: Path) -> pd.Series:
    """Timestamps as UTC; tz-naive or unparseable values raise DataError naming the row."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        raise DataError(file, "timestamps carry no time zone; expected UTC", column="ts")
    elif pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        text = values.astype("str").str.strip()
        for row, value in enumerate(text):
            if not _TZ_SUFFIX.search(value):
                raise DataError(
                    file,
                    f"expected an ISO-8601 timestamp with a UTC offset (e.g. 2024-01-01T00:00:00Z), got {value!r}",
                    column="ts",
                    row=row,
                )
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    else:
        raise DataError(file, f"expected UTC timestamps, got dtype {values.dtype}", column="ts")
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise DataError(file, f"unreadable timestamp {values.iloc[row]!r}", column="ts", row=row)
    return parsed


def read_market_caps(path: str | Path, *, close: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read market caps from a long-format CSV or Parquet file.

    The file has columns ``ts`` (UTC timestamps; strings need an explicit
    offset such as ``Z`` or ``+00:00``), ``symbol`` and exactly one of

    * ``market_cap`` -- market capitalisation in USD, used as is; or
    * ``supply`` -- circulating supply in coins. Then ``close`` is required and
      the cap at each bar ``t`` of ``close`` is
      ``cap[t, i] = supply_i(as of t) * close[t, i]``, the supply being the
      latest value at a time ``<= t`` (never a later one); bars before a
      symbol's first supply row have no cap. Symbols without a close column
      are dropped.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.parquet`` or ``.pq`` file.
    close : DataFrame, optional
        Wide closes (UTC DatetimeIndex), needed only for a ``supply`` file.

    Returns
    -------
    DataFrame
        Wide market caps: UTC ``ts`` index (increasing), one column per symbol
        (sorted), NaN where a symbol has no value at that time. Pass it as
        ``build_index(..., market_caps=)``.

    Raises
    ------
    DataError
        Unknown file type, unreadable file, missing or ambiguous columns,
        tz-naive or unreadable timestamps, empty symbols, values that are not
        finite and > 0, duplicate ``(ts, symbol)`` rows -- naming the file and,
        where known, the column and the 0-based row; a ``supply`` file without
        ``close``.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(file, f"expected a .csv or .parquet file, got suffix {file.suffix!r}")
    if not file.is_file():
        raise DataError(file, "file not found")
    try:
        raw = pd.read_csv(file) if suffix == ".csv" else pd.read_parquet(file)
    except Exception as exc:  # the parsers raise many types; all mean "cannot read"
        raise DataError(file, f"cannot read the file: {exc}") from exc
    for column in ("ts", "symbol"):
        if column not in raw.columns:
            raise DataError(file, f"missing column '{column}' (expected ts, symbol, market_cap or supply)")
    value_columns = [c for c in ("market_cap", "supply") if c in raw.columns]
    if len(value_columns) != 1:
        raise DataError(
            file,
            "expected exactly one of the columns 'market_cap' or 'supply', "
            f"found {value_columns if value_columns else 'neither'}",
        )
    kind = value_columns[0]
    if kind == "supply" and close is None:
        raise DataError(file, "the file gives 'supply'; pass close= to compute cap = supply x close")
    if len(raw) == 0:
        raise DataError(file, "no rows")

    ts = _parse_utc(raw["ts"].reset_index(drop=True), file)
    symbol = raw["symbol"].reset_index(drop=True)
    bad_symbol = symbol.isna().to_numpy() | (symbol.astype("str").str.strip() == "").to_numpy()
    if bad_symbol.any():
        raise DataError(file, "empty symbol", column="symbol", row=int(np.flatnonzero(bad_symbol)[0]))
    symbol = symbol.astype("str").str.strip()
    value = pd.to_numeric(raw[kind].reset_index(drop=True), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~(np.isfinite(value) & (value > 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            file, f"expected a finite positive {kind}, got {raw[kind].iloc[row]!r}", column=kind, row=row
        )
    long = pd.DataFrame({"ts": ts, "symbol": symbol, "value": value})
    duplicated = long.duplicated(["ts", "symbol"]).to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(file, "duplicate (ts, symbol) row", row=row, detail=f"{ts.iloc[row]} {symbol.iloc[row]}")

    wide = long.pivot(index="ts", columns="symbol", values="value").sort_index().sort_index(axis=1)
    wide.index.name = "ts"
    wide.columns = pd.Index(list(wide.columns), dtype=object)
    if kind == "market_cap":
        return wide

    assert close is not None
    grid = _utc_index(close.index, _CLOSE_LABEL)
    symbols = [s for s in wide.columns if s in close.columns]
    supply = wide[symbols].reindex(wide.index.union(grid)).ffill().reindex(grid)
    prices = close[symbols].set_axis(grid, axis=0).astype(np.float64)
    caps = supply * prices
    caps.index.name = "ts"
    return caps


# --------------------------------------------------------------------------- ticker migrations


@dataclass(frozen=True)
class TickerMigration:
    """A ticker change of one token: ``ratio`` new tokens per old one."""

    old: str
    new: str
    effective: str
    ratio: float = 1.0
    note: str = ""


#: Ticker migrations applied with ``index.migrations = true`` (see the module docstring).
TICKER_MIGRATIONS: Final[tuple[TickerMigration, ...]] = (
    TickerMigration(
        "RNDR", "RENDER", "2024-07-26", 1.0,
        "Render Network moved from Ethereum (RNDR) to Solana (RENDER) 1:1; Binance RENDER from 2024-07-26",
    ),
)


@dataclass(frozen=True)
class MigrationNote:
    """What :func:`apply_migrations` did for one migration (for ``summary.json``).

    ``old_last`` / ``new_first``: last bar of the old ticker before the switch and first
    bar of the new one (None when absent); ``bridged_bars``: bars filled at the old
    ticker's last close across the swap; ``hole_bars``: bars left empty (a data hole).
    """

    old: str
    new: str
    old_last: pd.Timestamp | None
    new_first: pd.Timestamp | None
    bridged_bars: int
    hole_bars: int


def apply_migrations(
    close: pd.DataFrame,
    migrations: Sequence[TickerMigration] = TICKER_MIGRATIONS,
    *,
    max_bridge_days: float = 7.0,
) -> tuple[pd.DataFrame, tuple[MigrationNote, ...]]:
    """Join each migrated token's old and new ticker into one column (the new ticker).

    ``P_new[t] = P_old[t] / ratio`` for bars before the new ticker's first bar, ``P_new[t]``
    from it on. NaN runs after the old ticker's last bar (before the new one's first bar)
    of at most ``max_bridge_days`` are filled with the old ticker's last close (the swap
    window); longer runs, and holes inside the old ticker's life, stay NaN.

    Returns
    -------
    close : DataFrame
        Same grid; the old ticker's column removed, the new ticker's holding the joined
        series (appended if it was absent). Columns without a migration are untouched.
    notes : tuple of MigrationNote
        One per applied migration (those whose old ticker is a column).
    """
    out = close.copy()
    notes = []
    for m in migrations:
        if m.old not in out.columns:
            continue
        old = out[m.old].astype(float) / m.ratio
        new = out[m.new].astype(float) if m.new in out.columns else pd.Series(np.nan, index=out.index)
        first_new = new.first_valid_index()
        joined = old.copy() if first_new is None else old.where(old.index < first_new, new)
        before = joined[joined.index < first_new] if first_new is not None else joined
        old_last = before.last_valid_index()
        bridged = 0
        if old_last is not None and first_new is not None:
            gap = joined.loc[old_last:first_new].iloc[1:-1]
            span = first_new - old_last
            if len(gap) and gap.isna().all() and span <= pd.Timedelta(days=max_bridge_days) + (out.index[1] - out.index[0]):
                joined.loc[gap.index] = joined.loc[old_last]
                bridged = len(gap)
        life = joined.loc[joined.first_valid_index() : joined.last_valid_index()] if joined.notna().any() else joined.iloc[:0]
        notes.append(MigrationNote(m.old, m.new, old_last, first_new, bridged, int(life.isna().sum())))
        out = out.drop(columns=[m.old])
        out[m.new] = joined
    return out, tuple(notes)


def migrate_caps(caps: pd.DataFrame, migrations: Sequence[TickerMigration] = TICKER_MIGRATIONS) -> pd.DataFrame:
    """Market caps with each old ticker's column joined into the new ticker's
    (the new ticker's value where both exist)."""
    out = caps.copy()
    for m in migrations:
        if m.old not in out.columns:
            continue
        joined = out[m.new].combine_first(out[m.old]) if m.new in out.columns else out[m.old]
        out = out.drop(columns=[m.old])
        out[m.new] = joined
    return out


def load_snapshot_caps(path: str | Path, *, delay: pd.Timedelta = pd.Timedelta(days=1)) -> pd.DataFrame:
    """Market caps from a snapshot file whose ``ts`` holds end-of-day values, shifted to
    when they are known.

    A snapshot stamped ``ts`` = D 00:00 UTC (e.g. the bundled CoinMarketCap file) holds
    day D's end-of-day values; it is returned at ``ts + delay`` (D+1 00:00 by default),
    so a rebalance at D's first bar does not see it. Reading and validation as
    :func:`read_market_caps` (``market_cap`` column).
    """
    caps = read_market_caps(path)
    caps.index = pd.DatetimeIndex(caps.index + delay, name="ts")
    return caps
