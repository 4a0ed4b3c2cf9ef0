"""The futures leg: contract calendar, contract prices, roll schedule, funding.

Everything here turns market conventions into plain arrays for the simulation
kernel (:mod:`backtest.kernels`):

* a :class:`ContractBook` — each contract's prices over its live range only (one flat
  array: memory grows with bars + contracts, never bars x contracts), ``price(t, k)``,
  and the bar at which contract ``k`` expires (settles);
* a :class:`RollSchedule` — per bar, the primary contract ``c0[t]``, the
  contract being rolled into ``c1[t]`` (``-1`` if none) and the fraction
  ``w1[t]`` of the hedge that sits in ``c1``;
* funding per bar for perpetuals;
* :func:`slot_prices` — the kernel's ``T x S`` price matrix, contract ``k`` in column
  ``k % S`` where ``S`` (2 for a quarterly roll) contracts are used at once.

Conventions
-----------
Bars are labelled by their open time; a bar's price is its close, at
``close_time = ts + bar``. Dated contracts expire the last Friday of March, June,
September and December at 08:00 UTC and settle in cash at the index. The
settlement bar of a contract is the last bar whose close time is at or before
the expiry (on hourly bars, the bar opening 07:00 UTC); its settlement price is
the index level at that bar's close.

Modelled dated futures: ``F_k(t) = I(t) * exp(b_t * tau_k(t))`` with ``b_t`` the
annualised basis and ``tau_k(t) = (expiry_k - close_time(t)) / 365 days``. ``b_t``
is either a constant (``futures.basis = "constant"``) or, with ``"series"``, the
last value of a basis series observed at or before bar t's close
(:func:`load_basis_series`, :func:`basis_per_bar`).
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
    "slot_prices",
    "LISTED_AFTER",
    "BasisSeries",
    "BasisInfo",
    "load_basis_series",
    "basis_per_bar",
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


@dataclass(frozen=True, eq=False)
class ContractBook:
    """Prices of every contract the replay may hold, each over its own live range.

    Memory grows with bars + contracts: contract ``k`` keeps one price per bar of its
    live range ``[start[k], start[k] + length_k)`` only, in one flat array (no dense
    bars x contracts matrix). ``price(t, k)`` is NaN outside the live range.

    Attributes
    ----------
    labels : tuple of str
        Contract labels: expiry as ISO string, or ``"PERP"``.
    expiry : tuple of Timestamp or None
    values : ndarray of float64
        The live ranges' prices, contract after contract: contract ``k``'s price at the
        close of bar ``t`` is ``values[offset[k] + t - start[k]]`` (NaN where it does not trade).
    start : ndarray of int64, shape (K,)
        First bar of each contract's live range.
    offset : ndarray of int64, shape (K + 1,)
        Where each contract's prices begin in ``values`` (``offset[K] == len(values)``).
    exp_bar : ndarray of int64, shape (K,)
        Settlement bar of each contract (a huge number for the perpetual or for
        contracts expiring after the replay).
    kind : {"quarterly", "perpetual"}
    source : str
        Where prices come from (for the report).
    n_bars : int
        Bars of the replay.
    """

    labels: tuple[str, ...]
    expiry: tuple[pd.Timestamp | None, ...]
    values: np.ndarray
    start: np.ndarray
    offset: np.ndarray
    exp_bar: np.ndarray
    kind: str
    source: str
    n_bars: int

    def prices(self, t: np.ndarray, k: np.ndarray) -> np.ndarray:
        """``price(t[i], k[i])`` for integer arrays of bars and contracts (NaN outside a live range)."""
        t = np.asarray(t, dtype=np.int64)
        k = np.asarray(k, dtype=np.int64)
        i = t - self.start[k]
        ok = (i >= 0) & (i < self.offset[k + 1] - self.offset[k])
        out = np.full(np.broadcast(t, k).shape, np.nan)
        out[ok] = self.values[(self.offset[k] + i)[ok]]
        return out

    def column(self, k: int) -> np.ndarray:
        """Contract ``k``'s price on every bar (float64[T], NaN outside its live range)."""
        out = np.full(self.n_bars, np.nan)
        lo, hi = int(self.offset[k]), int(self.offset[k + 1])
        s = int(self.start[k])
        out[s : s + hi - lo] = self.values[lo:hi]
        return out

    @property
    def px(self) -> np.ndarray:
        """The dense T x K matrix ``px[t, k]`` (built on demand; for small books and tests --
        the engine never builds it)."""
        if not self.labels:
            return np.empty((self.n_bars, 0))
        return np.column_stack([self.column(k) for k in range(len(self.labels))])


def _book(labels, expiry, pieces: list[tuple[int, np.ndarray]], exp_bar, kind: str, source: str,
          n_bars: int) -> ContractBook:
    """A :class:`ContractBook` from one ``(start bar, prices)`` piece per contract."""
    lengths = np.array([len(v) for _, v in pieces], dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.concatenate([v for _, v in pieces]).astype(np.float64) if pieces else np.empty(0)
    start = np.array([s for s, _ in pieces], dtype=np.int64)
    return ContractBook(tuple(labels), tuple(expiry), values, start, offset, np.asarray(exp_bar, dtype=np.int64), kind,
                        source, int(n_bars))


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


#: a modelled contract lists when the contract this many before it settles (2: the current and
#: the next quarter trade, as on the venues); a roll starts at most 60 days before expiry
#: (``roll.days_before_expiry``), after the next contract has listed (quarters are >= 84 days apart)
LISTED_AFTER = 2


def modelled_quarterly(
    close_times: pd.DatetimeIndex, index_level: np.ndarray, basis_ann: float | np.ndarray, *, source: str | None = None
) -> ContractBook:
    """Dated quarterly futures priced from the index with an annualised basis.

    ``px[t, k] = I[t] * exp(b_t * tau)``, ``tau = max(expiry_k - close_time_t, 0) / 365 d``,
    with ``b_t = basis_ann`` (a constant) or ``basis_ann[t]`` (one value per bar, see
    :func:`basis_per_bar`); the settlement bar's price is the index itself; after it, NaN.
    Contract ``k`` is live from the bar after contract ``k - LISTED_AFTER`` settles (from
    the first bar for the first ``LISTED_AFTER`` contracts) to its settlement bar, so the
    book holds about ``LISTED_AFTER x T`` prices whatever the number of contracts.
    """
    n = len(close_times)
    b = np.broadcast_to(np.asarray(basis_ann, dtype=float), (n,))
    # one quarter beyond the last bar: a replay ending inside a roll window holds the next contract
    expiries = quarterly_expiries(close_times[0], close_times[-1] + pd.Timedelta(days=92))
    exp_bar = _settlement_bars(close_times, expiries)
    pieces = []
    for k, exp in enumerate(expiries):
        lo = 0 if k < LISTED_AFTER else int(min(exp_bar[k - LISTED_AFTER] + 1, n))
        hi = int(min(exp_bar[k], n - 1)) + 1
        lo = min(lo, hi)
        # unit-safe (the index may be in us or ns): years of 365 days to expiry
        tau = np.maximum(np.asarray((exp - close_times[lo:hi]) / YEAR, dtype=float), 0.0)
        col = index_level[lo:hi] * np.exp(b[lo:hi] * tau)
        if exp_bar[k] < n:
            col[exp_bar[k] - lo] = index_level[exp_bar[k]]
        pieces.append((lo, col))
    labels = tuple(e.strftime("%Y-%m-%dT%H:%MZ") for e in expiries)
    if source is None:
        source = f"modelled: F = I * exp({float(b[0]):g} * tau)"
    return _book(labels, expiries, pieces, exp_bar, "quarterly", source, n)


def _read_checked_parquet(path: Path, required: tuple[str, ...], *, utc: tuple[str, ...],
                          missing: str = "missing required column") -> pd.DataFrame:
    """A Parquet file with its ``required`` columns, those of ``utc`` holding tz-aware UTC times.

    Raises
    ------
    DataError
        Unreadable file, a missing column (``missing`` is the message), or a ``utc`` column
        of another dtype or zone.
    """
    try:
        raw = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(path, f"cannot read Parquet: {exc}") from None
    for col in required:
        if col not in raw.columns:
            raise DataError(path, missing, column=col)
    for col in utc:
        if not isinstance(raw[col].dtype, pd.DatetimeTZDtype) or str(raw[col].dt.tz) != "UTC":
            raise DataError(path, f"expected tz-aware UTC timestamps, got dtype {raw[col].dtype}", column=col)
    return raw


def _read_futures_file(path: Path) -> pd.DataFrame:
    """The checked rows of a dated-futures price file (see :func:`quarterly_from_prices`)."""
    raw = _read_checked_parquet(path, ("ts", "expiry", "close"), utc=("ts", "expiry"))
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
    return raw


def quarterly_from_prices(
    close_times: pd.DatetimeIndex, index_level: np.ndarray, path: Path, *, settle_at_index: bool = True
) -> ContractBook:
    """Dated futures from a user file (long Parquet: ``ts``, ``expiry``, ``close``).

    Any expiry calendar: the contracts and their expiries are the file's distinct
    ``expiry`` values (quarterly, monthly, ...), and :func:`roll_schedule` rolls on them.
    ``ts`` is the bar open time as everywhere in hedgebt. Each contract's prices
    are aligned to the replay's bars (rows off the replay's bars are ignored); bars the
    file does not cover stay NaN and are refused later if the replay needs them
    (:func:`check_coverage`). The settlement price at expiry is the index
    (``settle_at_index``, the default), else the file's price at the settlement bar;
    rows after the settlement bar are ignored. A contract's live range runs from its
    first to its last priced bar (the settlement bar included).
    """
    raw = _read_futures_file(path)
    # contracts that expired before the first bar closes are never held
    expiries = sorted(e for e in (pd.Timestamp(x) for x in raw["expiry"].unique()) if e > close_times[0])
    if not expiries:
        raise DataError(path, f"no contract expires after the first bar's close {close_times[0]}", column="expiry")
    n = len(close_times)
    exp_bar = _settlement_bars(close_times, expiries)
    bar = close_times[1] - close_times[0] if len(close_times) > 1 else pd.Timedelta(hours=1)
    open_times = (close_times - bar).as_unit("ns")
    pos = open_times.get_indexer(pd.DatetimeIndex(raw["ts"]).as_unit("ns"))
    exp_ns = pd.DatetimeIndex(expiries).as_unit("ns").asi8
    row_exp = pd.DatetimeIndex(raw["expiry"]).as_unit("ns").asi8
    kid = np.minimum(np.searchsorted(exp_ns, row_exp), len(expiries) - 1)
    known = exp_ns[kid] == row_exp
    last_ok = np.minimum(exp_bar, n - 1)
    keep = known & (pos >= 0) & (pos <= last_ok[kid])
    kk, tt = kid[keep], pos[keep]
    vv = raw["close"].to_numpy(dtype=float)[keep]
    first = np.full(len(expiries), n, dtype=np.int64)
    last = np.full(len(expiries), -1, dtype=np.int64)
    np.minimum.at(first, kk, tt)
    np.maximum.at(last, kk, tt)
    settles = (exp_bar < n) & settle_at_index
    first[settles] = np.minimum(first[settles], exp_bar[settles])
    last[settles] = np.maximum(last[settles], exp_bar[settles])
    first = np.minimum(first, last + 1)
    offset = np.concatenate([[0], np.cumsum(last + 1 - first)]).astype(np.int64)
    values = np.full(int(offset[-1]), np.nan)
    values[offset[kk] + tt - first[kk]] = vv
    k_set = np.flatnonzero(settles)
    values[offset[k_set] + exp_bar[k_set] - first[k_set]] = index_level[exp_bar[k_set]]
    labels = tuple(e.strftime("%Y-%m-%dT%H:%MZ") for e in expiries)
    return ContractBook(labels, tuple(expiries), values, first, offset, exp_bar, "quarterly",
                        f"user file {path.name}", n)


def perpetual(index_level: np.ndarray, premium: float) -> ContractBook:
    """A perpetual on the index marked at ``I * (1 + premium)``; it never expires."""
    px = index_level * (1.0 + premium)
    return _book(("PERP",), (None,), [(0, px)], np.array([_PERP_EXPIRY_BAR], dtype=np.int64), "perpetual",
                 f"mark = I * (1 + {premium:g})", len(index_level))


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
        prices = book.prices(t[use], cid[use])
        # a contract held on bar t is also marked against bar t-1
        prev_ok = np.ones(use.sum(), dtype=bool)
        prev_idx = t[use] - 1
        has_prev = prev_idx >= 0
        prev_ok[has_prev] = np.isfinite(book.prices(prev_idx[has_prev], cid[use][has_prev])) | (
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


def slot_prices(book: ContractBook, schedule: RollSchedule) -> np.ndarray:
    """The kernel's price matrix: ``S`` columns ("slots"), contract ``k`` in column ``k % S``.

    On bar ``t`` the replay uses the contracts ``c0[t], c1[t]`` and the last bar's
    ``c0[t-1], c1[t-1]`` (their positions are marked, settled or rolled on ``t``);
    ``S`` is the widest span ``max - min + 1`` of those ids over all bars (1 for a
    perpetual, 2 for a quarterly roll), so contracts used on the same bar never share a
    column. ``out[t, k % S] = price(t, k)`` for every used ``(t, k)``, NaN elsewhere:
    memory is ``T x S`` whatever the number of contracts. The kernels read contract
    ``k`` at column ``k % S`` (:meth:`backtest.market.Market.contract_price`); with
    ``S = K`` (one column per contract) that is the dense ``T x K`` form.

    Raises
    ------
    ValueError
        If two contracts used on the same bar would share a column (not possible for
        a schedule from :func:`roll_schedule`; checked anyway).
    """
    c0, c1 = schedule.c0, schedule.c1
    T = len(c0)
    none = np.full(1, -1, dtype=np.int64)
    sources = (c0, c1, np.concatenate([none, c0[:-1]]), np.concatenate([none, c1[:-1]]))
    hi = np.max(np.stack(sources), axis=0)
    lo = np.min(np.stack([np.where(s >= 0, s, np.iinfo(np.int64).max) for s in sources]), axis=0)
    used = hi >= 0
    S = int(max(1, (hi[used] - lo[used] + 1).max(initial=1)))
    for i, a in enumerate(sources):
        for b in sources[i + 1 :]:
            clash = (a >= 0) & (b >= 0) & (a != b) & (a % S == b % S)
            if clash.any():
                t = int(np.flatnonzero(clash)[0])
                raise ValueError(f"contracts {book.labels[int(a[t])]} and {book.labels[int(b[t])]} are both used on "
                                 f"bar {t} but share price column {int(a[t] % S)} of {S}")
    out = np.full((T, S), np.nan)
    for src in sources:
        t = np.flatnonzero(src >= 0)
        out[t, src[t] % S] = book.prices(t, src[t])
    return out


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


# --------------------------------------------------------------------------- basis series


@dataclass(frozen=True)
class BasisSeries:
    """A cleaned annualised-basis series, indexed by the time each value became known.

    Attributes
    ----------
    obs_ts : DatetimeIndex
        UTC time each value was observed (strictly increasing).
    basis_ann : ndarray
        Annualised basis (0.05 = 5 %/yr) known from ``obs_ts`` on.
    path : Path
    rows_total, rows_kept : int
        Rows in the file, and rows left after cleaning.
    min_days_to_expiry : float
    """

    obs_ts: pd.DatetimeIndex
    basis_ann: np.ndarray
    path: Path
    rows_total: int
    rows_kept: int
    min_days_to_expiry: float


@dataclass(frozen=True)
class BasisInfo:
    """What basis a replay used (for ``summary.json`` and the report).

    Attributes
    ----------
    source : {"constant", "series"}
    is_proxy : bool
        True for a series: no AI-index future trades, the series is another market's basis.
    description : str
    file, sha256 : str or None
        The series file (name) and its content hash.
    mean_ann, min_ann, max_ann : float
        Of the per-bar basis over the replay.
    rows_kept, rows_total : int or None
    min_days_to_expiry : float or None
    """

    source: str
    is_proxy: bool
    description: str
    file: str | None
    sha256: str | None
    mean_ann: float
    min_ann: float
    max_ann: float
    rows_kept: int | None = None
    rows_total: int | None = None
    min_days_to_expiry: float | None = None


def load_basis_series(path: Path, *, min_days_to_expiry: float = 7.0) -> BasisSeries:
    """Read and clean an annualised-basis series.

    The file (Parquet) needs ``obs_ts`` (tz-aware UTC: when the value was known -- for a
    daily CME settlement, 15:00 America/Chicago of the trade date, not the trade date's
    00:00 ``ts``), ``basis_ann`` (annualised basis, decimal) and ``days_to_expiry``.
    Cleaning: rows with a missing ``basis_ann`` (no spot price that day) and rows with
    ``days_to_expiry <= min_days_to_expiry`` (near expiry the annualised figure
    ``basis * 365 / days`` is noise) are dropped; nothing is smoothed.

    Raises
    ------
    DataError
        Unreadable file, missing column, non-UTC ``obs_ts``, a non-finite ``basis_ann`` that is
        not missing, duplicate ``obs_ts`` among kept rows, or no row left.
    """
    raw = _read_checked_parquet(
        path, ("obs_ts", "basis_ann", "days_to_expiry"), utc=("obs_ts",),
        missing="missing required column (futures.basis_file needs obs_ts, basis_ann, days_to_expiry)",
    )
    obs = raw["obs_ts"]
    b = pd.to_numeric(raw["basis_ann"], errors="coerce").to_numpy(dtype=float)
    dte = pd.to_numeric(raw["days_to_expiry"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isinf(b) | (np.abs(np.nan_to_num(b)) >= 5.0))
    if bad.size:
        raise DataError(path, f"expected an annualised basis in (-5, 5), got {b[bad[0]]!r}", column="basis_ann", row=int(bad[0]))
    keep = np.isfinite(b) & np.isfinite(dte) & (dte > min_days_to_expiry) & obs.notna().to_numpy()
    if not keep.any():
        raise DataError(path, f"no row with a basis and more than {min_days_to_expiry:g} days to expiry (futures.basis_min_days_to_expiry)")
    rows = np.flatnonzero(keep)
    kept = pd.DataFrame({"obs_ts": obs.iloc[rows].to_numpy(), "b": b[rows], "row": rows}).sort_values("obs_ts", kind="stable")
    dup = kept["obs_ts"].duplicated().to_numpy()
    if dup.any():
        r = int(kept["row"].to_numpy()[np.flatnonzero(dup)[0]])
        raise DataError(path, "duplicate obs_ts among the kept rows", column="obs_ts", row=r)
    return BasisSeries(
        obs_ts=pd.DatetimeIndex(kept["obs_ts"]).tz_convert("UTC"),
        basis_ann=kept["b"].to_numpy(dtype=float),
        path=Path(path),
        rows_total=len(raw),
        rows_kept=int(keep.sum()),
        min_days_to_expiry=float(min_days_to_expiry),
    )


def basis_per_bar(close_times: pd.DatetimeIndex, series: BasisSeries, *, max_stale_days: float = 14.0) -> np.ndarray:
    """The basis each bar uses: the last value observed at or before the bar's close.

    ``b_t = basis_ann[j]`` with ``j = max{j : obs_ts[j] <= close_time_t}`` -- a forward fill
    over weekends and holidays that never uses a value observed after the bar closed.

    Raises
    ------
    DataError
        If the first bar closes before the first observation, or a bar's last observation is
        more than ``max_stale_days`` old (the series does not cover the replay).
    """
    j = series.obs_ts.searchsorted(close_times, side="right") - 1
    if j[0] < 0:
        raise DataError(
            series.path,
            f"no basis observed at or before the first bar's close {close_times[0]} (first obs_ts {series.obs_ts[0]}); "
            "move scenario.start or use futures.basis = 'constant'",
            column="obs_ts",
        )
    age = (close_times - series.obs_ts[j]) / pd.Timedelta(days=1)
    stale = np.flatnonzero(np.asarray(age, dtype=float) > max_stale_days)
    if stale.size:
        i = int(stale[0])
        raise DataError(
            series.path,
            f"bar closing {close_times[i]} has no basis observed in the {max_stale_days:g} days before "
            f"(last obs_ts {series.obs_ts[j[i]]}); the series does not cover the replay (futures.basis_max_stale_days)",
            column="obs_ts",
        )
    return series.basis_ann[j]
