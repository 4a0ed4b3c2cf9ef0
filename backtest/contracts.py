"""The futures leg: contract calendar, contract prices, roll schedule, funding.

Everything here turns market conventions into plain arrays for the simulation
kernel (:mod:`backtest.kernels`):

* a :class:`ContractBook` — one price column per contract, ``px[t, k]``, and the
  bar at which contract ``k`` expires (settles);
* a :class:`RollSchedule` — per bar, the primary contract ``c0[t]``, the
  contract being rolled into ``c1[t]`` (``-1`` if none) and the fraction
  ``w1[t]`` of the hedge that sits in ``c1``;
* funding per bar for perpetuals.

Conventions
-----------
Bars are labelled by their open time; a bar's price is its close, at
``close_time = ts + bar``. Dated contracts expire the last Friday of March, June,
September and December at 08:00 UTC and settle in cash at the index. The
settlement bar of a contract is the last bar whose close time is at or before
the expiry (on hourly bars, the bar opening 07:00 UTC); its settlement price is
the index level at that bar's close.

Modelled dated futures: ``F_k(t) = I(t) * exp(b * tau_k(t))`` with ``b`` the
annualised basis and ``tau_k(t) = (expiry_k - close_time(t)) / 365 days``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.config import FundingSection, RollSection
from backtest.errors import ConfigError, DataError

__all__ = [
    "YEAR",
    "last_friday",
    "quarterly_expiries",
    "ContractBook",
    "RollSchedule",
    "modelled_quarterly",
    "quarterly_from_prices",
    "perpetual",
    "roll_schedule",
    "funding_times",
    "funding_per_bar",
    "FundingInfo",
    "check_coverage",
]

YEAR = pd.Timedelta(days=365)
_PERP_EXPIRY_BAR = np.iinfo(np.int64).max // 2


def last_friday(year: int, month: int) -> date:
    """Last Friday of a calendar month."""
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - 4) % 7)


def quarterly_expiries(first: pd.Timestamp, last: pd.Timestamp) -> list[pd.Timestamp]:
    """Quarterly expiries (last Friday of Mar/Jun/Sep/Dec, 08:00 UTC) from the first one
    after ``first`` up to and including the first one at or after ``last``."""
    out: list[pd.Timestamp] = []
    year = first.year
    while True:
        for month in (3, 6, 9, 12):
            exp = pd.Timestamp(last_friday(year, month)).tz_localize("UTC") + pd.Timedelta(hours=8)
            if exp <= first:
                continue
            out.append(exp)
            if exp >= last:
                return out
        year += 1


@dataclass(frozen=True)
class ContractBook:
    """Prices of every contract the replay may hold.

    Attributes
    ----------
    labels : tuple of str
        Contract labels: expiry as ISO string, or ``"PERP"``.
    expiry : tuple of Timestamp or None
    px : ndarray, shape (T, K)
        Price of contract k at the close of bar t (NaN where it does not trade).
    exp_bar : ndarray of int64, shape (K,)
        Settlement bar of each contract (a huge number for the perpetual or for
        contracts expiring after the replay).
    kind : {"quarterly", "perpetual"}
    source : str
        Where prices come from (for the report).
    """

    labels: tuple[str, ...]
    expiry: tuple[pd.Timestamp | None, ...]
    px: np.ndarray
    exp_bar: np.ndarray
    kind: str
    source: str


@dataclass(frozen=True)
class FundingInfo:
    """What the funding schedule of a replay looked like."""

    funding_times: int
    filled: int


@dataclass(frozen=True)
class RollSchedule:
    """Which contract(s) the hedge sits in on each bar (see module docstring)."""

    c0: np.ndarray
    c1: np.ndarray
    w1: np.ndarray


def _settlement_bars(close_times: pd.DatetimeIndex, expiries: list[pd.Timestamp]) -> np.ndarray:
    pos = close_times.searchsorted(pd.DatetimeIndex(expiries), side="right") - 1
    # an expiry after the last bar's close never settles inside the replay
    after = np.asarray([e > close_times[-1] for e in expiries])
    return np.where(after, _PERP_EXPIRY_BAR, pos).astype(np.int64)


def modelled_quarterly(
    close_times: pd.DatetimeIndex, index_level: np.ndarray, basis_ann: float
) -> ContractBook:
    """Dated quarterly futures priced from the index with a constant annualised basis.

    ``px[t, k] = I[t] * exp(basis_ann * tau)``, ``tau = max(expiry_k - close_time_t, 0) / 365 d``;
    the settlement bar's price is the index itself; after it, NaN.
    """
    # one quarter beyond the last bar: a replay ending inside a roll window holds the next contract
    expiries = quarterly_expiries(close_times[0], close_times[-1] + pd.Timedelta(days=92))
    exp_bar = _settlement_bars(close_times, expiries)
    px = np.full((len(close_times), len(expiries)), np.nan)
    for k, exp in enumerate(expiries):
        # unit-safe (the index may be in us or ns): years of 365 days to expiry
        tau = np.maximum(np.asarray((exp - close_times) / YEAR, dtype=float), 0.0)
        live = np.arange(len(close_times)) <= exp_bar[k]
        px[live, k] = index_level[live] * np.exp(basis_ann * tau[live])
        if exp_bar[k] < len(close_times):
            px[exp_bar[k], k] = index_level[exp_bar[k]]
    labels = tuple(e.strftime("%Y-%m-%dT%H:%MZ") for e in expiries)
    return ContractBook(labels, tuple(expiries), px, exp_bar, "quarterly", f"modelled: F = I * exp({basis_ann:g} * tau)")


def quarterly_from_prices(
    close_times: pd.DatetimeIndex, index_level: np.ndarray, path: Path
) -> ContractBook:
    """Dated quarterly futures from a user file (long Parquet: ``ts``, ``expiry``, ``close``).

    ``ts`` is the bar open time as everywhere in hedgebt. Each contract's prices
    are aligned to the replay's bars; bars the file does not cover stay NaN and
    are refused later if the replay needs them (:func:`check_coverage`). The
    settlement price at expiry is the index, whatever the file says.
    """
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(path, f"cannot read Parquet: {exc}") from None
    for col in ("ts", "expiry", "close"):
        if col not in raw.columns:
            raise DataError(path, "missing required column", column=col)
    for col in ("ts", "expiry"):
        if not isinstance(raw[col].dtype, pd.DatetimeTZDtype) or str(raw[col].dt.tz) != "UTC":
            raise DataError(path, f"expected tz-aware UTC timestamps, got dtype {raw[col].dtype}", column=col)
    from backtest.data import check_futures_frame

    check_futures_frame(raw, path)
    close = raw["close"].to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(close) | (close <= 0))
    if bad.size:
        raise DataError(path, f"expected a finite positive price, got {close[bad[0]]!r}", column="close", row=int(bad[0]))
    dup = raw.duplicated(["ts", "expiry"]).to_numpy()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        raise DataError(path, "duplicate (ts, expiry) row", column="ts", row=r, detail=f"ts={raw['ts'].iloc[r]}")
    expiries = sorted(pd.Timestamp(e) for e in raw["expiry"].unique())
    exp_bar = _settlement_bars(close_times, expiries)
    bar = close_times[1] - close_times[0] if len(close_times) > 1 else pd.Timedelta(hours=1)
    open_times = close_times - bar
    px = np.full((len(close_times), len(expiries)), np.nan)
    for k, exp in enumerate(expiries):
        series = raw.loc[raw["expiry"] == exp].set_index("ts")["close"]
        px[:, k] = series.reindex(open_times).to_numpy()
        if exp_bar[k] < len(close_times):
            px[exp_bar[k], k] = index_level[exp_bar[k]]
            px[exp_bar[k] + 1 :, k] = np.nan
    labels = tuple(e.strftime("%Y-%m-%dT%H:%MZ") for e in expiries)
    return ContractBook(labels, tuple(expiries), px, exp_bar, "quarterly", f"user file {path.name}")


def perpetual(index_level: np.ndarray, premium: float) -> ContractBook:
    """A perpetual on the index marked at ``I * (1 + premium)``; it never expires."""
    px = (index_level * (1.0 + premium))[:, None].copy()
    return ContractBook(("PERP",), (None,), px, np.array([_PERP_EXPIRY_BAR], dtype=np.int64), "perpetual", f"mark = I * (1 + {premium:g})")


def roll_schedule(close_times: pd.DatetimeIndex, book: ContractBook, roll: RollSection) -> RollSchedule:
    """Per-bar contract allocation for a roll rule.

    For contract k the roll starts at the first bar closing at or after
    ``day(expiry_k) - days_before_expiry days + hour_utc`` (or at the settlement
    bar for ``hold_to_expiry``), and moves ``1/grace_bars`` of the hedge into
    contract k+1 per bar; on the roll's last bar the hedge sits wholly in k+1.

    Raises
    ------
    ConfigError
        If a grace roll would not finish by the expiring contract's settlement bar.
    """
    n = len(close_times)
    if book.kind == "perpetual":
        return RollSchedule(np.zeros(n, np.int64), np.full(n, -1, np.int64), np.zeros(n))
    grace = 1 if roll.mode == "hold_to_expiry" else roll.grace_bars
    starts = np.empty(len(book.expiry), dtype=np.int64)
    for k, exp in enumerate(book.expiry):
        assert exp is not None
        if roll.mode == "hold_to_expiry":
            starts[k] = book.exp_bar[k]
            continue
        when = exp.normalize() - pd.Timedelta(days=roll.days_before_expiry) + pd.Timedelta(hours=roll.hour_utc)
        when = min(when, exp)
        starts[k] = close_times.searchsorted(when, side="left")
        if starts[k] < n and starts[k] + grace - 1 > book.exp_bar[k]:
            raise ConfigError(
                "roll.grace_bars",
                f"a roll of {grace} bars starting {close_times[starts[k]]} does not finish before the "
                f"{book.labels[k]} contract settles; start earlier (roll.days_before_expiry) or use fewer bars",
            )
    done = starts + grace - 1  # bar on which the hedge sits wholly in k+1
    t = np.arange(n)
    c0 = np.searchsorted(done, t, side="right").astype(np.int64)
    c1 = np.full(n, -1, dtype=np.int64)
    w1 = np.zeros(n)
    if grace > 1:
        for k in range(len(starts)):
            lo, hi = starts[k], min(done[k], n)
            if lo < n:
                c1[lo:hi] = k + 1
                w1[lo:hi] = (np.arange(lo, hi) - lo + 1) / grace
    if c0.max() >= len(book.labels) or (c1.max() >= len(book.labels)):
        raise ConfigError("futures", "the replay needs a contract beyond the last one listed in the futures price data")
    return RollSchedule(c0, c1, w1)


def check_coverage(book: ContractBook, schedule: RollSchedule, close_times: pd.DatetimeIndex) -> None:
    """Every bar's held contracts must have a price (user futures files may not cover them)."""
    t = np.arange(len(close_times))
    for name, cid in (("primary", schedule.c0), ("rolled-into", schedule.c1)):
        use = cid >= 0
        prices = book.px[t[use], cid[use]]
        # a contract held on bar t is also marked against bar t-1
        prev_ok = np.ones(use.sum(), dtype=bool)
        prev_idx = t[use] - 1
        has_prev = prev_idx >= 0
        prev_ok[has_prev] = np.isfinite(book.px[prev_idx[has_prev], cid[use][has_prev]]) | (
            cid[use][has_prev] != np.concatenate([[cid[0]], cid[:-1]])[use][has_prev]
        )
        bad = np.flatnonzero(~np.isfinite(prices) | ~prev_ok)
        if bad.size:
            i = int(t[use][bad[0]])
            raise DataError(
                book.source,
                f"no price for the {name} contract {book.labels[int(cid[i])]} at bar {close_times[i]} (close time); "
                "the futures price file must cover every bar a contract is held",
                column="close",
            )


def funding_times(first_open: pd.Timestamp, last_close: pd.Timestamp, interval_hours: int) -> pd.DatetimeIndex:
    """Funding settlement times every ``interval_hours`` from 00:00 UTC, inside (first_open, last_close]."""
    start = first_open.normalize()
    times = pd.date_range(start, last_close, freq=pd.Timedelta(hours=interval_hours), tz="UTC")
    return times[(times > first_open) & (times <= last_close)]


def funding_per_bar(
    open_times: pd.DatetimeIndex,
    bar: pd.Timedelta,
    cfg: FundingSection,
    *,
    premium: float = 0.0,
    series: pd.Series | None = None,
    series_label: str = "funding series",
) -> tuple[np.ndarray, FundingInfo]:
    """Sum of funding rates settled inside each bar ``(open, open + bar]``.

    Returns
    -------
    rate : ndarray
        Per-bar summed funding rate (decimal); payment on bar t is
        ``-position * contract_size * mark[t] * rate[t]``.
    info : FundingInfo
        Number of funding times and of times filled with ``fill_rate_per_interval``.
    """
    close_times = open_times + bar
    times = funding_times(open_times[0], close_times[-1], cfg.interval_hours)
    filled = 0
    if cfg.source == "constant":
        rates = np.full(len(times), cfg.rate_per_interval)
    elif cfg.source == "formula":
        rate = premium + float(np.clip(cfg.interest_per_interval - premium, -cfg.clamp_per_interval, cfg.clamp_per_interval))
        rates = np.full(len(times), rate)
    else:
        assert series is not None
        aligned = np.array(series.reindex(times).to_numpy(dtype=float), copy=True)
        missing = ~np.isfinite(aligned)
        filled = int(missing.sum())
        if filled:
            if cfg.fill_rate_per_interval is None:
                first = times[np.flatnonzero(missing)[0]]
                raise DataError(
                    series_label,
                    f"no funding rate for funding time {first} ({filled} of {len(times)} funding times missing); "
                    "set funding.fill_rate_per_interval to fill them or shorten the scenario",
                    column="funding_rate",
                )
            aligned[missing] = cfg.fill_rate_per_interval
        rates = aligned
    bar_of = close_times.searchsorted(times, side="left")
    out = np.zeros(len(open_times))
    np.add.at(out, bar_of, rates)
    return out, FundingInfo(funding_times=int(len(times)), filled=filled)
