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

RNDR and RENDER are the same token after a ticker migration. In the bundled
data RNDR ends 2023-12-30 (it exits then) and RENDER starts 2024-07-26, so it
enters at the first scheduled rebalance after ``min_history_days`` of RENDER
history (2024-09-01 with the monthly, 30-day default): the index holds no
Render in between. AGIX and OCEAN (merged into FET/ASI in 2024) also end
2023-12-30 in the bundled data and exit then.
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
        Window of the ``inverse_vol`` volatility estimate, in days, >= 1.
    min_constituents : int
        Eligible constituents needed at the start rebalance, in
        [1, len(constituents)].
    base_level : float
        Level at the start bar (USD), finite and > 0.

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
        if not _is_int(self.vol_lookback_days) or self.vol_lookback_days < 1:
            raise ConfigError(
                "index.vol_lookback_days", f"expected an integer number of days >= 1, got {self.vol_lookback_days!r}"
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
        Columns ``ts``, ``symbol``, ``event`` (``"enter"`` / ``"exit"``) and
        ``reason``, in time order (exits before entries at the same bar).
    start : Timestamp
        First bar with a level.
    spec : IndexSpec
        The specification the index was built with.
    """

    level: pd.Series
    high: pd.Series
    weights: pd.DataFrame
    units: pd.DataFrame
    events: pd.DataFrame
    start: pd.Timestamp
    spec: IndexSpec


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


def _validate_close(close: pd.DataFrame, spec: IndexSpec) -> tuple[pd.DatetimeIndex, np.ndarray]:
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
        if len(rows) and len(rows) != rows[-1] - rows[0] + 1:
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
    if spec.weighting == "market_cap" and market_caps is None:
        raise ConfigError("index.weighting", "'market_cap' weighting needs market caps (pass market_caps=)")
    if spec.weighting != "market_cap" and market_caps is not None:
        raise ConfigError(
            "index.weighting", f"market_caps were given but weighting is {spec.weighting!r}; they would be ignored"
        )

    index, prices = _validate_close(close, spec)
    highs = np.full(prices.shape, np.nan) if high is None else _validate_high(high, index, prices, spec)
    caps = None if market_caps is None else _validate_caps(market_caps, spec)
    n_bars, n_sym = prices.shape
    days = pd.Timedelta(days=spec.min_history_days)

    # Eligibility at the scheduled bars.
    priced = ~np.isnan(prices)
    has_data = priced.any(axis=0)
    first_pos = np.where(has_data, priced.argmax(axis=0), 0)
    last_pos = np.where(has_data, n_bars - 1 - priced[::-1].argmax(axis=0), -1)
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
    enough = eligible.sum(axis=1) >= spec.min_constituents
    if not enough.any():
        raise DataError(
            _CLOSE_LABEL,
            f"no scheduled ({spec.rebalance}) rebalance has at least {spec.min_constituents} eligible "
            f"constituents (price at the bar and >= {spec.min_history_days} days of history)",
        )
    start = int(sched_pos[int(enough.argmax())])

    # Holdings: members of the latest scheduled rebalance that still have a price.
    sched_row = np.cumsum(scheduled) - 1  # bar 0 is always scheduled
    held_after = eligible[sched_row] & priced
    held_after[:start] = False
    held_before = np.zeros_like(held_after)
    held_before[1:] = held_after[:-1]
    exits = held_before & ~priced
    rebalance = np.zeros(n_bars, dtype=bool)
    rebalance[start:] = scheduled[start:]
    rebalance |= exits.any(axis=1)
    reb_pos = np.flatnonzero(rebalance)

    # Target weights per rebalance.
    log_returns = None
    if spec.weighting == "inverse_vol":
        log_returns = np.full(prices.shape, np.nan)
        with np.errstate(invalid="ignore"):
            log_returns[1:] = np.log(prices[1:] / prices[:-1])
    weights = np.zeros((len(reb_pos), n_sym))
    for k, r in enumerate(reb_pos):
        members = held_after[r]
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

    rebalance_row = np.full(n_bars, -1, dtype=np.int64)
    rebalance_row[reb_pos] = np.arange(len(reb_pos))
    level, level_high, units, status = index_level_nb(
        prices, np.ascontiguousarray(highs), rebalance_row, weights, start, float(spec.base_level)
    )
    if status[0] != STATUS_OK:  # the plan above makes this unreachable; kept as a guard
        code, bar, col = (int(x) for x in status)
        what = {
            STATUS_UNPRICED_HOLDING: "held constituent without a price outside a rebalance",
            STATUS_NO_START_REBALANCE: "start bar is not a rebalance bar",
        }.get(code, "positive target weight without a price")
        raise RuntimeError(f"index kernel: {what} at bar {bar} ({index[bar]}), column {spec.constituents[col]}")

    columns = pd.Index(spec.constituents, dtype=object)
    reb_index = pd.DatetimeIndex(index[reb_pos], name="ts")
    return IndexResult(
        level=pd.Series(level, index=index, name="level"),
        high=pd.Series(level_high, index=index, name="high"),
        weights=pd.DataFrame(weights, index=reb_index, columns=columns),
        units=pd.DataFrame(units, index=reb_index, columns=columns),
        events=_events(index, spec, exits, held_after, held_before, scheduled, start, last_pos),
        start=index[start],
        spec=spec,
    )


def _events(
    index: pd.DatetimeIndex,
    spec: IndexSpec,
    exits: np.ndarray,
    held_after: np.ndarray,
    held_before: np.ndarray,
    scheduled: np.ndarray,
    start: int,
    last_pos: np.ndarray,
) -> pd.DataFrame:
    entries = held_after & ~held_before
    entries[:start] = False
    entries[~scheduled] = False
    rows: list[tuple[pd.Timestamp, str, str, str]] = []
    for bar in np.flatnonzero(exits.any(axis=1) | entries.any(axis=1)):
        for col in np.flatnonzero(exits[bar]):
            last = index[last_pos[col]]
            reason = f"data ended (last price {last:%Y-%m-%d %H:%M} UTC)"
            rows.append((index[bar], spec.constituents[col], "exit", reason))
        for col in np.flatnonzero(entries[bar]):
            rows.append((index[bar], spec.constituents[col], "enter", f"history >= {spec.min_history_days} days"))
    return pd.DataFrame(
        {
            "ts": pd.DatetimeIndex([row[0] for row in rows], dtype=index.dtype),
            "symbol": pd.array([row[1] for row in rows], dtype="str"),
            "event": pd.array([row[2] for row in rows], dtype="str"),
            "reason": pd.array([row[3] for row in rows], dtype="str"),
        }
    )


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
