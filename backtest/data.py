"""Load and validate hedgebt's long-format market data.

Every data file hedgebt reads is a *long* Parquet table: one row per (bar, symbol) with

* ``ts`` -- the bar OPEN time, ``datetime64[us, UTC]`` (tz-aware, UTC);
* ``symbol`` -- a string such as ``"FET"``;
* ``close`` (always) and optionally ``open``, ``high``, ``low`` (prices, quote currency) and
  ``volume`` (base-asset units); the funding file has ``interval_h`` and ``funding_rate`` instead.

Validation rules
----------------
:func:`validate_long_frame` (and therefore :func:`read_long`, :func:`load_panel` and
:func:`load_funding`) raises :class:`~backtest.errors.DataError` on the first violation. The
message is one line naming the file, the column, the 0-based row (position in the file), the
symbol and ``ts`` of that row, what was expected and what was found:

1. the file exists, is Parquet and has at least one row; the required columns are present;
2. ``ts`` is a tz-aware datetime column in UTC with no missing values;
3. ``symbol`` is a string column with no missing or empty values;
4. ``(ts, symbol)`` is unique (the first row repeating an earlier key is named) and, within each
   symbol, ``ts`` strictly increases in file order (the first out-of-order row is named);
5. prices (``open``, ``high``, ``low``, ``close``) are finite and ``> 0``;
6. when ``high`` and ``low`` are present: ``high >= low`` and ``low <= close <= high`` (and the same
   for ``open``), each with a relative tolerance of ``1e-12``, i.e. ``low <= x`` is accepted when
   ``low - x <= 1e-12 * max(|low|, |x|)``;
7. ``volume`` (when present) is finite and ``>= 0``.

Bar grid and gap policy
-----------------------
:func:`load_panel` puts every requested symbol on one regular UTC grid of bar length ``freq``
(given, or inferred as the most common difference between consecutive bars of a symbol). Grid
points are ``1970-01-01 00:00 UTC + k * freq``; a bar whose ``ts`` is off the grid (e.g. 10:30 in
hourly data) is a :class:`~backtest.errors.DataError`.

A symbol's *life* is ``[first bar, last bar]``. Outside its life the panel holds NaN: that is a
listing or a delisting, not a gap. Inside its life a run of ``n`` consecutive missing grid points
is a *gap*:

* ``n <= max_fill_bars``: the gap is forward-filled, ``close[t] = close[last bar before the gap]``,
  with ``high = low = close`` and ``volume = 0`` on the filled bars, and reported in
  :attr:`PricePanel.gaps`;
* ``n > max_fill_bars``: :class:`~backtest.errors.DataError` naming the file, the symbol, the first
  missing ``ts`` and ``n``. ``max_fill_bars`` is the config key ``data.max_fill_bars``;
  ``max_fill_bars=0`` makes every gap an error.

When ``start``/``end`` cut a symbol's data, the bar just before ``start`` and the bar just after
``end`` still count for the gap policy, so a gap straddling ``start`` is filled from the bar before
it (and its whole length counts against ``max_fill_bars``). Only the filled bars inside the window
are reported.

Resampling
----------
``resample="1D"`` aggregates the file's bars into buckets ``floor(ts / rule) * rule`` (anchored at
1970-01-01 00:00 UTC, so ``"1D"`` gives UTC days labelled by their 00:00 open time):
``close`` = last close in the bucket, ``high`` = max, ``low`` = min, ``volume`` = sum. A bucket
bar exists only if the bucket holds at least one bar; the gap policy then applies on the
resampled grid (``max_fill_bars`` counts resampled bars). ``start``/``end`` select bucket labels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from backtest.errors import ConfigError, DataError

__all__ = [
    "GapReport",
    "PricePanel",
    "file_sha256",
    "read_long",
    "load_panel",
    "load_funding",
    "validate_long_frame",
]

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
"""Columns holding prices (finite, > 0)."""

MAX_PRICE = 1e9
"""Largest accepted price (USD per unit, index level or futures price): beyond it a value is a
unit or parsing mistake, and products of prices with positions would lose precision."""

MAX_VOLUME = 1e18
"""Largest accepted bar volume (base units)."""

MAX_FUNDING_RATE = 0.05
"""Largest accepted ``|funding_rate|`` per settlement interval (5 %; exchanges cap far lower)."""

TS_MIN = pd.Timestamp("2009-01-01", tz="UTC")
"""Earliest accepted bar time in an input file (no crypto market before 2009)."""

TS_MAX = pd.Timestamp("2100-01-01", tz="UTC")
"""Latest accepted bar time in an input file."""

REL_TOL = 1e-12
"""Relative tolerance of the ``low <= price <= high`` checks."""

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GapReport:
    """Forward-filled gaps of one symbol inside the loaded window.

    Attributes
    ----------
    symbol : str
    n_gaps : int
        Number of runs of missing bars inside the symbol's life.
    n_missing_bars : int
        Total number of bars filled (sum of the run lengths).
    longest_gap_bars : int
        Length of the longest run (0 when there is no gap).
    longest_gap_start : pandas.Timestamp or None
        ``ts`` of the first missing bar of the longest run (the earliest one on ties).
    """

    symbol: str
    n_gaps: int
    n_missing_bars: int
    longest_gap_bars: int
    longest_gap_start: pd.Timestamp | None


@dataclass(frozen=True)
class PricePanel:
    """Wide, gap-filled prices of several symbols on one regular UTC grid.

    Attributes
    ----------
    close : pandas.DataFrame
        Index: regular ``DatetimeIndex`` named ``"ts"`` (bar open time, UTC) with step ``freq``;
        columns: symbols in requested order. NaN only outside a symbol's life.
    high, low : pandas.DataFrame or None
        Same shape as ``close``; None when the file has no such column.
    volume : pandas.DataFrame or None
        Base-asset units; 0 on filled bars; None when the file has no ``volume`` column.
    freq : pandas.Timedelta
        Bar length of the panel (the resample rule when resampling).
    gaps : tuple of GapReport
        One report per symbol, in column order.
    path : pathlib.Path
        The file read (resolved).
    sha256 : str
        Hex SHA-256 of the file's bytes (see :func:`file_sha256`).
    """

    close: pd.DataFrame
    high: pd.DataFrame | None
    low: pd.DataFrame | None
    volume: pd.DataFrame | None
    freq: pd.Timedelta
    gaps: tuple[GapReport, ...]
    path: Path
    sha256: str

    @property
    def symbols(self) -> tuple[str, ...]:
        """The panel's symbols, in column order."""
        return tuple(str(c) for c in self.close.columns)

    def gap_report(self, symbol: str) -> GapReport:
        """The :class:`GapReport` of ``symbol``.

        Raises
        ------
        KeyError
            If ``symbol`` is not a column of the panel.
        """
        for report in self.gaps:
            if report.symbol == symbol:
                return report
        raise KeyError(symbol)


# --------------------------------------------------------------------------------------------
# Reading and validation
# --------------------------------------------------------------------------------------------


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_input_file(path: Path, expected: str) -> None:
    """Refuse anything but an existing regular file, with a message saying what was found.

    Distinguishes a missing file, a dangling or looping symbolic link, a folder, a device
    (``/dev/zero``), a FIFO and a socket, so none is read (a FIFO would block, a device never ends).
    """
    import errno
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(path, "symbolic link loop; expected " + expected) from None
        if os.path.islink(path):
            raise DataError(path, f"dangling symbolic link (to {os.readlink(path)}); expected {expected}") from None
        if exc.errno == errno.ENOENT:
            raise DataError(path, "file not found") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise DataError(str(path)[:60] + "...", "file name too long") from None
        raise DataError(path, f"cannot read ({exc.strerror}); expected {expected}") from None
    mode = st.st_mode
    if stat.S_ISREG(mode):
        if not os.access(path, os.R_OK):
            raise DataError(path, f"permission denied; expected a readable {expected}")
        return
    kind = (
        "a directory" if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
        else "a character device" if stat.S_ISCHR(mode)
        else "a block device" if stat.S_ISBLK(mode)
        else "a socket" if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise DataError(path, f"expected {expected}, found {kind}")


def read_long(path: str | Path, *, required: Sequence[str] = ("ts", "symbol", "close")) -> pd.DataFrame:
    """Read a long-format Parquet file and validate it.

    Parameters
    ----------
    path : str or Path
        The Parquet file.
    required : sequence of str
        Columns that must be present. The price columns validated are the ones of
        ``open, high, low, close`` present in the file.

    Returns
    -------
    pandas.DataFrame
        The rows in file order with a fresh ``RangeIndex``.

    Raises
    ------
    DataError
        If the file is missing, not Parquet, empty, lacks a required column or breaks a
        validation rule (see the module docstring).
    """
    path = Path(path)
    check_input_file(path, "a Parquet file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable Parquet file ({_one_line(exc)})") from exc
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(
            path,
            f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(table.column_names) or 'no columns'}",
            column=missing[0],
        )
    if table.num_rows == 0:
        raise DataError(path, "file has 0 rows; expected at least one bar")
    df = table.to_pandas()
    validate_long_frame(df, file=str(path), price_columns=[c for c in PRICE_COLUMNS if c in df.columns])
    return df.reset_index(drop=True)


def validate_long_frame(df: pd.DataFrame, *, file: str, price_columns: Sequence[str]) -> None:
    """Check a long frame against the validation rules of the module docstring.

    Parameters
    ----------
    df : pandas.DataFrame
        Long frame with at least ``ts``, ``symbol`` and ``price_columns``; rows in file order.
        Optional ``high``/``low``/``volume`` columns are checked when present.
    file : str
        Name used in error messages.
    price_columns : sequence of str
        Columns that must hold finite prices ``> 0``.

    Raises
    ------
    DataError
        On the first violation; ``row`` is the 0-based position in ``df``.
    """
    _check_long_frame(df, file=file, price_columns=price_columns)


def _check_long_frame(
    df: pd.DataFrame,
    *,
    file: str | Path,
    price_columns: Sequence[str],
    row_numbers: np.ndarray | None = None,
    line_numbers: np.ndarray | None = None,
    check_order: bool = True,
) -> None:
    """Implementation of :func:`validate_long_frame`.

    ``row_numbers``/``line_numbers`` map positions in ``df`` to the row (and text line) reported
    in errors, for frames parsed from vendor files. ``check_order=False`` skips the
    strictly-increasing check (vendor files may be newest-first) but keeps the uniqueness check.
    """
    ctx = _Ctx(df, file, row_numbers, line_numbers)
    missing = [c for c in ("ts", "symbol", *price_columns) if c not in df.columns]
    if missing:
        raise DataError(
            file,
            f"missing required column(s) {', '.join(repr(c) for c in missing)}; "
            f"found {', '.join(map(str, df.columns))}",
            column=missing[0],
        )
    if len(df) == 0:
        raise DataError(file, "0 rows; expected at least one bar")

    ts = _check_ts(ctx)
    codes = _check_symbol(ctx)
    for col in price_columns:
        values = _numeric(ctx, col)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail(col, i, f"expected a finite price > 0, found {float(values[i])!r}")
        bad = values > MAX_PRICE
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail(col, i, f"expected a price <= {MAX_PRICE:g}, found {float(values[i])!r}")
    if "high" in df.columns and "low" in df.columns:
        high = _numeric(ctx, "high")
        low = _numeric(ctx, "low")
        _check_le(ctx, low, high, "high", "high >= low", "low", "high")
        for col in ("close", "open"):
            if col in df.columns:
                x = _numeric(ctx, col)
                _check_le(ctx, low, x, col, f"low <= {col}", "low", col)
                _check_le(ctx, x, high, col, f"{col} <= high", col, "high")
    if "volume" in df.columns:
        volume = _numeric(ctx, "volume")
        bad = ~(np.isfinite(volume) & (volume >= 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail("volume", i, f"expected a finite volume >= 0, found {float(volume[i])!r}")
        bad = volume > MAX_VOLUME
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail("volume", i, f"expected a volume <= {MAX_VOLUME:g}, found {float(volume[i])!r}")
    _check_unique_and_order(ctx, ts, codes, check_order=check_order)


class _Ctx:
    """Frame plus row/line mapping, to build one-line :class:`DataError` messages."""

    def __init__(
        self,
        df: pd.DataFrame,
        file: str | Path,
        row_numbers: np.ndarray | None,
        line_numbers: np.ndarray | None,
    ) -> None:
        self.df = df
        self.file = file
        self.row_numbers = row_numbers
        self.line_numbers = line_numbers

    def row(self, i: int) -> int:
        return int(self.row_numbers[i]) if self.row_numbers is not None else i

    def detail(self, i: int, extra: str | None = None) -> str:
        parts = []
        if self.line_numbers is not None:
            parts.append(f"line {int(self.line_numbers[i])}")
        if "symbol" in self.df.columns:
            parts.append(f"symbol {_scalar_repr(self.df['symbol'].iloc[i])}")
        if "ts" in self.df.columns:
            parts.append(f"ts {self.df['ts'].iloc[i]}")
        if extra:
            parts.append(extra)
        return ", ".join(parts)

    def fail(self, column: str, i: int, problem: str, extra: str | None = None) -> None:
        raise DataError(self.file, problem, column=column, row=self.row(i), detail=self.detail(i, extra))


def _scalar_repr(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_utc(tz: object) -> bool:
    return str(tz) in _UTC_NAMES


def _check_ts(ctx: _Ctx) -> np.ndarray:
    """Validate ``ts``; return it as int64 nanoseconds since the epoch."""
    col = ctx.df["ts"]
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        if not _is_utc(dtype.tz):
            ctx.fail("ts", 0, f"timestamps must be tz-aware UTC; found time zone '{dtype.tz}' ({dtype})")
    elif pd.api.types.is_datetime64_dtype(dtype):
        ctx.fail("ts", 0, f"timestamps must be tz-aware UTC; found tz-naive {dtype}")
    else:
        ctx.fail("ts", 0, f"timestamps must be tz-aware UTC datetimes; found dtype {dtype}")
    nat = col.isna().to_numpy()
    if nat.any():
        ctx.fail("ts", int(np.flatnonzero(nat)[0]), "expected a timestamp, found a missing value (NaT)")
    raw = col.array.asi8  # in the column's own unit: checked before any conversion can overflow
    unit = col.array.unit
    per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    lo, hi = TS_MIN.value // per, TS_MAX.value // per
    bad = (raw < lo) | (raw >= hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        ctx.fail("ts", i, f"expected a time between {TS_MIN.date()} and {TS_MAX.date()}, found {_fmt_raw(raw[i], unit)}")
    return col.array.as_unit("ns").asi8


def _fmt_raw(value: int, unit: str) -> str:
    """A raw datetime64 value in ``unit`` as an ISO time when representable, else the number."""
    try:
        return pd.Timestamp(np.datetime64(int(value), unit)).isoformat()
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        return f"{int(value)} {unit} since 1970"


def _check_symbol(ctx: _Ctx) -> np.ndarray:
    """Validate ``symbol``; return integer codes (equal codes = equal symbols)."""
    col = ctx.df["symbol"]
    if not (
        pd.api.types.is_string_dtype(col.dtype) or col.dtype == object or isinstance(col.dtype, pd.CategoricalDtype)
    ):
        ctx.fail("symbol", 0, f"expected a string column, found dtype {col.dtype}")
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    missing = codes < 0
    if missing.any():
        ctx.fail("symbol", int(np.flatnonzero(missing)[0]), "expected a symbol, found a missing value")
    bad_values = [k for k, u in enumerate(uniques) if not isinstance(u, str) or not u.strip() or u != u.strip()]
    if bad_values:
        i = int(np.flatnonzero(np.isin(codes, bad_values))[0])
        ctx.fail("symbol", i, f"expected a non-empty symbol without surrounding spaces, found {col.iloc[i]!r}")
    return codes


def _numeric(ctx: _Ctx, column: str) -> np.ndarray:
    """The column as float64 (missing values as NaN); non-numeric dtypes are an error."""
    col = ctx.df[column]
    if pd.api.types.is_bool_dtype(col.dtype) or not pd.api.types.is_numeric_dtype(col.dtype):
        ctx.fail(column, 0, f"expected a numeric column, found dtype {col.dtype}")
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_le(
    ctx: _Ctx, lo: np.ndarray, hi: np.ndarray, column: str, rule: str, lo_name: str, hi_name: str
) -> None:
    """Raise unless ``lo <= hi`` within :data:`REL_TOL` (relative) everywhere."""
    bad = (lo - hi) > REL_TOL * np.maximum(np.abs(lo), np.abs(hi))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        ctx.fail(column, i, f"expected {rule}, found {lo_name}={float(lo[i])!r} > {hi_name}={float(hi[i])!r}")


def _check_unique_and_order(ctx: _Ctx, ts: np.ndarray, codes: np.ndarray, *, check_order: bool) -> None:
    """``(ts, symbol)`` unique; within a symbol ``ts`` strictly increasing in row order."""
    n = len(ts)
    if n < 2:
        return
    # Sort by (symbol, ts, position): equal keys end up adjacent, earliest position first.
    order = np.lexsort((np.arange(n), ts, codes))
    same = (codes[order[1:]] == codes[order[:-1]]) & (ts[order[1:]] == ts[order[:-1]])
    if same.any():
        later = order[1:][same]
        earlier = order[:-1][same]
        k = int(np.argmin(later))
        i, j = int(later[k]), int(earlier[k])
        ctx.fail(
            "ts",
            i,
            f"expected unique (ts, symbol) pairs, found a duplicate of row {ctx.row(j)}",
        )
    if not check_order:
        return
    # Stable sort by symbol keeps file order within a symbol.
    by_sym = np.argsort(codes, kind="stable")
    s_codes, s_ts = codes[by_sym], ts[by_sym]
    bad = (s_codes[1:] == s_codes[:-1]) & (s_ts[1:] <= s_ts[:-1])
    if bad.any():
        rows = by_sym[1:][bad]
        prev = by_sym[:-1][bad]
        k = int(np.argmin(rows))
        i, j = int(rows[k]), int(prev[k])
        ctx.fail(
            "ts",
            i,
            f"expected ts strictly increasing within a symbol, found {ctx.df['ts'].iloc[i]} "
            f"after {ctx.df['ts'].iloc[j]} (row {ctx.row(j)})",
        )


# --------------------------------------------------------------------------------------------
# Panel
# --------------------------------------------------------------------------------------------


def _parse_timedelta(value: str, key: str) -> pd.Timedelta:
    """Parse ``"1h"``, ``"1D"``, ``"8h"``... into a positive :class:`pandas.Timedelta`."""
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        try:
            td = pd.Timedelta(pd.tseries.frequencies.to_offset(value))
        except (ValueError, TypeError):
            raise ConfigError(key, f"expected a fixed bar length such as '1h' or '1D', got {value!r}") from None
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise ConfigError(key, f"expected a positive bar length, got {value!r}")
    return td


def _parse_bound(value: object, key: str) -> pd.Timestamp | None:
    """Parse a start/end bound; naive values are UTC."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise ConfigError(key, f"expected a date or timestamp, got {value!r}") from None
    if pd.isna(ts):
        raise ConfigError(key, f"expected a date or timestamp, got {value!r}")
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _fmt_ns(ns: int | np.integer) -> str:
    return str(pd.Timestamp(int(ns), unit="ns", tz="UTC"))


def load_panel(
    path: str | Path,
    symbols: Sequence[str] | None = None,
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    freq: str | None = None,
    resample: str | None = None,
    max_fill_bars: int = 6,
) -> PricePanel:
    """Load a long price file into a wide, gap-filled :class:`PricePanel`.

    Parameters
    ----------
    path : str or Path
        Long-format Parquet file (see the module docstring).
    symbols : sequence of str, optional
        Columns of the panel, in this order. None = every symbol with at least one bar in
        ``[start, end]``, sorted by name.
    start, end : str or Timestamp, optional
        Inclusive UTC bounds on the (resampled) bar open time; naive values are UTC.
    freq : str, optional
        Bar length of the file's bars, e.g. ``"1h"``. None = the most common difference between
        consecutive bars of the requested symbols (ties: the shortest).
    resample : str, optional
        Aggregate to this bar length, e.g. ``"1D"`` (must be a multiple of ``freq``): close = last
        close, high = max, low = min, volume = sum of the bucket's bars.
    max_fill_bars : int
        Longest run of missing bars forward-filled (config key ``data.max_fill_bars``); longer
        runs raise. 0 = no filling.

    Returns
    -------
    PricePanel

    Raises
    ------
    DataError
        On invalid data, an unknown symbol, a symbol without bars in ``[start, end]``, an empty
        result, off-grid timestamps or a gap longer than ``max_fill_bars``.
    ConfigError
        On invalid arguments (``start`` after ``end``, bad ``freq``/``resample``, negative
        ``max_fill_bars``, duplicate symbols).
    """
    args = _panel_args(symbols, start, end, freq, resample, max_fill_bars)
    path = Path(path)
    df = read_long(path)
    names, explicit = _requested_symbols(df, args.symbols, path)
    bars = _select_rows(df, names)
    src_step = _infer_bar_length(bars, path) if args.src_step is None else args.src_step
    _check_grid(bars, df, src_step, path)
    bars, step = _resample(bars, src_step, args.out_step, resample)
    bars, names = _window_bars(bars, names, explicit, args.t_start, args.t_end, path)
    grid = _grid(bars, step, args.t_start, args.t_end)
    _check_gaps(bars, grid, names, args.max_fill, path)
    wide, filled = _fill_wide(bars, grid, len(names))
    wide, filled, index = _cut_to_window(wide, filled, grid)
    return _price_panel(wide, filled, index, names, grid.step, path)


@dataclass(frozen=True)
class _PanelArgs:
    """Validated arguments of :func:`load_panel`."""

    symbols: list[str] | None
    t_start: pd.Timestamp | None
    t_end: pd.Timestamp | None
    src_step: pd.Timedelta | None
    out_step: pd.Timedelta | None
    max_fill: int


@dataclass(frozen=True)
class _Values:
    """Per-bar (1-d) or per-grid-point (2-d) values: ``close`` always, the others when the file has them."""

    close: np.ndarray
    high: np.ndarray | None
    low: np.ndarray | None
    volume: np.ndarray | None

    def fields(self) -> tuple[np.ndarray | None, ...]:
        """``(close, high, low, volume)``."""
        return (self.close, self.high, self.low, self.volume)

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> _Values:
        """Apply ``fn`` to every present array."""
        return _Values(*(None if v is None else fn(v) for v in self.fields()))


@dataclass(frozen=True)
class _Bars:
    """Bars of the requested symbols sorted by (symbol code, ts).

    ``codes`` is the symbol's position in the requested list, ``ts`` the bar open time (ns since
    the epoch), ``rows`` the 0-based file row of the bar (of a bucket's first bar after resampling).
    """

    codes: np.ndarray
    ts: np.ndarray
    rows: np.ndarray
    values: _Values

    def take(self, keep: np.ndarray) -> _Bars:
        """The bars selected by the boolean mask or index array ``keep``."""
        return _Bars(self.codes[keep], self.ts[keep], self.rows[keep], self.values.map(lambda v: v[keep]))


@dataclass(frozen=True)
class _Grid:
    """Positions of the bars on the regular grid ``t0 + k * step``.

    ``pos[j]`` is the grid position of bar ``j``, ``n_grid`` the number of grid points, and
    ``w_lo..w_hi`` (inclusive) the positions inside ``[start, end]``.
    """

    t0: int
    step: pd.Timedelta
    pos: np.ndarray
    n_grid: int
    w_lo: int
    w_hi: int


def _panel_args(
    symbols: Sequence[str] | None,
    start: object,
    end: object,
    freq: str | None,
    resample: str | None,
    max_fill_bars: object,
) -> _PanelArgs:
    """Check :func:`load_panel`'s arguments.

    Returns
    -------
    _PanelArgs
        Symbols as a list (a single string is one symbol), UTC bounds, parsed bar lengths.

    Raises
    ------
    ConfigError
        Negative or non-integer ``max_fill_bars``, bad bounds or ``start > end``, bad
        ``freq``/``resample``, an empty or duplicated symbol list.
    """
    if isinstance(max_fill_bars, bool) or not isinstance(max_fill_bars, (int, np.integer)) or max_fill_bars < 0:
        raise ConfigError("data.max_fill_bars", f"expected an integer >= 0, got {max_fill_bars!r}")
    t_start = _parse_bound(start, "data.start")
    t_end = _parse_bound(end, "data.end")
    if t_start is not None and t_end is not None and t_start > t_end:
        raise ConfigError("data.start", f"start {t_start} is after end {t_end}")
    src_step = None if freq is None else _parse_timedelta(freq, "data.freq")
    out_step = None if resample is None else _parse_timedelta(resample, "data.resample")
    names = None
    if symbols is not None:
        names = [symbols] if isinstance(symbols, str) else list(symbols)
        if not names:
            raise ConfigError("data.symbols", "expected at least one symbol, got an empty list")
        seen: set[str] = set()
        for s in names:
            if s in seen:
                raise ConfigError("data.symbols", f"symbol '{s}' is listed twice")
            seen.add(s)
    return _PanelArgs(names, t_start, t_end, src_step, out_step, int(max_fill_bars))


def _requested_symbols(df: pd.DataFrame, symbols: list[str] | None, path: Path) -> tuple[list[str], bool]:
    """The panel's symbols and whether they were given explicitly.

    Returns
    -------
    names : list of str
        ``symbols``, or every symbol of the file sorted by name when None.
    explicit : bool
        ``symbols is not None``.

    Raises
    ------
    DataError
        A requested symbol is not in the file.
    """
    file_symbols = sorted(pd.unique(df["symbol"]).tolist())
    if symbols is None:
        return file_symbols, False
    known = set(file_symbols)
    for s in symbols:
        if s not in known:
            raise DataError(path, f"unknown symbol '{s}'; available: {', '.join(file_symbols)}", column="symbol")
    return symbols, True


def _select_rows(df: pd.DataFrame, symbols: list[str]) -> _Bars:
    """Rows of ``symbols``, sorted by (position in ``symbols``, ts).

    File order within a symbol is ts order (validated by :func:`read_long`), so a stable sort by
    symbol code suffices.
    """
    file_codes, file_uniques = pd.factorize(df["symbol"])
    codes_all = pd.Index(symbols).get_indexer(pd.Index(file_uniques))[file_codes].astype(np.int64)
    sel = np.flatnonzero(codes_all >= 0)
    codes = codes_all[sel]
    order = np.argsort(codes, kind="stable")
    rows = sel[order]

    def column(name: str) -> np.ndarray | None:
        return df[name].to_numpy(np.float64)[rows] if name in df.columns else None

    values = _Values(df["close"].to_numpy(np.float64)[rows], column("high"), column("low"), column("volume"))
    return _Bars(codes[order], df["ts"].array.as_unit("ns").asi8[rows], rows, values)


def _infer_bar_length(bars: _Bars, path: Path) -> pd.Timedelta:
    """Most common difference between consecutive bars of a symbol (ties: the shortest).

    Raises
    ------
    DataError
        Every symbol has a single bar.
    """
    diffs = (bars.ts[1:] - bars.ts[:-1])[bars.codes[1:] == bars.codes[:-1]]
    if diffs.size == 0:
        raise DataError(
            path,
            "cannot infer the bar length: every requested symbol has a single bar; pass freq",
            column="ts",
        )
    values, counts = np.unique(diffs, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def _check_grid(bars: _Bars, df: pd.DataFrame, step: pd.Timedelta, path: Path) -> None:
    """Check ``ts % step == 0`` for every bar (grid anchored at 1970-01-01 00:00 UTC).

    Raises
    ------
    DataError
        Naming the earliest file row off the grid.
    """
    off = np.flatnonzero(bars.ts % int(step.value) != 0)
    if off.size:
        i = int(bars.rows[off].min())
        raise DataError(
            path,
            f"timestamp {df['ts'].iloc[i]} is not on the {_td_str(step)} bar grid "
            f"(expected bar open times at 1970-01-01 00:00 UTC + k * {_td_str(step)})",
            column="ts",
            row=i,
            detail=f"symbol '{df['symbol'].iloc[i]}', ts {df['ts'].iloc[i]}",
        )


def _resample(
    bars: _Bars, src_step: pd.Timedelta, out_step: pd.Timedelta | None, rule: str | None
) -> tuple[_Bars, pd.Timedelta]:
    """Aggregate bars into buckets ``floor(ts / out_step) * out_step`` per symbol.

    close = last close, high = max, low = min, volume = sum of the bucket's bars.

    Returns
    -------
    bars : _Bars
        One bar per non-empty bucket (``rows`` = file row of its first bar); unchanged when
        ``out_step`` is None.
    step : Timedelta
        The panel's bar length: ``out_step``, else ``src_step``.

    Raises
    ------
    ConfigError
        ``out_step`` is not a multiple of ``src_step``.
    """
    step_ns = int(src_step.value)
    if out_step is not None:
        if out_step.value % step_ns != 0:
            raise ConfigError(
                "data.resample",
                f"resample rule {rule!r} is not a multiple of the file's bar length {_td_str(src_step)}",
            )
        step_ns = int(out_step.value)
        ts, codes, v = bars.ts, bars.codes, bars.values
        bucket = np.floor_divide(ts, step_ns) * step_ns
        starts = np.flatnonzero(np.r_[True, (codes[1:] != codes[:-1]) | (bucket[1:] != bucket[:-1])])
        ends = np.r_[starts[1:], len(ts)] - 1
        values = _Values(
            v.close[ends],
            None if v.high is None else np.maximum.reduceat(v.high, starts),
            None if v.low is None else np.minimum.reduceat(v.low, starts),
            None if v.volume is None else np.add.reduceat(v.volume, starts),
        )
        bars = _Bars(codes[starts], bucket[starts], bars.rows[starts], values)
    return bars, pd.Timedelta(step_ns, unit="ns")


def _window_bars(
    bars: _Bars,
    symbols: list[str],
    explicit: bool,
    t_start: pd.Timestamp | None,
    t_end: pd.Timestamp | None,
    path: Path,
) -> tuple[_Bars, list[str]]:
    """Keep the bars in ``[start, end]`` plus one anchor bar on each side of a symbol's run.

    Symbols without a bar in the window are dropped when they were not requested explicitly.

    Returns
    -------
    bars : _Bars
        The kept bars, codes renumbered to the kept symbols.
    symbols : list of str
        The kept symbols.

    Raises
    ------
    DataError
        No bar in the window, or an explicitly requested symbol without one.
    """
    lo = -np.inf if t_start is None else t_start.value
    hi = np.inf if t_end is None else t_end.value
    in_win = (bars.ts >= lo) & (bars.ts <= hi)
    if not in_win.any():
        raise DataError(
            path,
            f"no bars of {', '.join(symbols)} {_window_str(t_start, t_end)}",
            column="ts",
        )
    has_bars = np.bincount(bars.codes[in_win], minlength=len(symbols)) > 0
    if not has_bars.all():
        empty = [s for s, ok in zip(symbols, has_bars, strict=True) if not ok]
        if explicit:
            raise DataError(
                path,
                f"symbol(s) {', '.join(empty)} have no bars {_window_str(t_start, t_end)}",
                column="symbol",
            )
        keep_sym = np.flatnonzero(has_bars)
        remap = np.full(len(symbols), -1, dtype=np.int64)
        remap[keep_sym] = np.arange(keep_sym.size)
        symbols = [symbols[k] for k in keep_sym]
        codes = remap[bars.codes]
        mask = codes >= 0
        bars = _Bars(codes, bars.ts, bars.rows, bars.values).take(mask)
        in_win = in_win[mask]
    codes = bars.codes
    same_next = np.r_[codes[1:] == codes[:-1], False]
    same_prev = np.r_[False, codes[1:] == codes[:-1]]
    keep = in_win | (same_next & np.r_[in_win[1:], False]) | (same_prev & np.r_[False, in_win[:-1]])
    return bars.take(keep), symbols


def _grid(bars: _Bars, step: pd.Timedelta, t_start: pd.Timestamp | None, t_end: pd.Timestamp | None) -> _Grid:
    """Grid ``t0 + k * step`` from the first kept bar ``t0``; ``pos = (ts - t0) // step``.

    The window is ``w_lo = ceil((start - t0) / step)`` (at least 0) to
    ``w_hi = floor((end - t0) / step)`` (at most ``n_grid - 1``).
    """
    step_ns = int(step.value)
    t0 = int(bars.ts.min())
    pos = (bars.ts - t0) // step_ns
    n_grid = int(pos.max()) + 1
    w_lo = 0 if t_start is None else max(0, -(-(t_start.value - t0) // step_ns))
    w_hi = n_grid - 1 if t_end is None else min(n_grid - 1, (t_end.value - t0) // step_ns)
    return _Grid(t0, step, pos, n_grid, w_lo, w_hi)


def _check_gaps(bars: _Bars, grid: _Grid, symbols: list[str], max_fill: int, path: Path) -> None:
    """Raise on a run of more than ``max_fill`` missing grid points inside a symbol's life.

    Only runs touching the window ``[w_lo, w_hi]`` count; the whole run's length counts.

    Raises
    ------
    DataError
        Naming the first too-long gap (symbol, first and last missing ts, length), the file row
        of the bar after it and how many more gaps exceed the limit.
    """
    pos, codes, step_ns = grid.pos, bars.codes, int(grid.step.value)
    same = codes[1:] == codes[:-1]
    run_len = (pos[1:] - pos[:-1] - 1) * same
    first_missing = pos[:-1] + 1
    last_missing = pos[1:] - 1
    relevant = (run_len > 0) & (last_missing >= grid.w_lo) & (first_missing <= grid.w_hi)
    too_long = np.flatnonzero(relevant & (run_len > max_fill))
    if too_long.size:
        k = int(too_long[0])
        n_bad = int(too_long.size)
        sym = symbols[int(codes[k])]
        gap_start = grid.t0 + int(first_missing[k]) * step_ns
        gap_end = grid.t0 + int(last_missing[k]) * step_ns
        more = f"; {n_bad - 1} more gap(s) exceed the limit" if n_bad > 1 else ""
        raise DataError(
            path,
            f"gap of {int(run_len[k])} missing {_td_str(grid.step)} bar(s) for '{sym}' from {_fmt_ns(gap_start)} "
            f"to {_fmt_ns(gap_end)} exceeds max_fill_bars={max_fill} (config key data.max_fill_bars "
            f"controls how many missing bars are forward-filled){more}",
            column="ts",
            row=int(bars.rows[k + 1]),
            detail=f"symbol '{sym}', first missing ts {_fmt_ns(gap_start)}",
        )


def _fill_wide(bars: _Bars, grid: _Grid, n_sym: int) -> tuple[_Values, np.ndarray]:
    """Wide ``(n_grid, n_sym)`` matrices, forward-filled inside each symbol's life.

    A missing point ``t`` between a symbol's first and last bar gets
    ``close[t] = close[last bar before t]``, ``high = low = close`` and ``volume = 0``;
    outside the life it stays NaN.

    Returns
    -------
    wide : _Values
        The matrices.
    filled : ndarray of bool
        ``(n_grid, n_sym)``, True on filled points.
    """
    n_grid, pos, codes = grid.n_grid, grid.pos, bars.codes

    def to_wide(values: np.ndarray) -> np.ndarray:
        mat = np.full((n_grid, n_sym), np.nan)
        mat[pos, codes] = values
        return mat

    wide = bars.values.map(to_wide)
    present = ~np.isnan(wide.close)
    first_pos = np.full(n_sym, n_grid, dtype=np.int64)
    last_pos = np.full(n_sym, -1, dtype=np.int64)
    np.minimum.at(first_pos, codes, pos)
    np.maximum.at(last_pos, codes, pos)
    grid_idx = np.arange(n_grid)[:, None]
    in_life = (grid_idx >= first_pos[None, :]) & (grid_idx <= last_pos[None, :])
    filled = in_life & ~present
    if filled.any():
        src = np.where(present, grid_idx, -1)
        np.maximum.accumulate(src, axis=0, out=src)
        rr, cc = np.nonzero(filled)
        close_fill = wide.close[src[rr, cc], cc]
        wide.close[rr, cc] = close_fill
        for mat in (wide.high, wide.low):
            if mat is not None:
                mat[rr, cc] = close_fill
        if wide.volume is not None:
            wide.volume[rr, cc] = 0.0
    return wide, filled


def _cut_to_window(wide: _Values, filled: np.ndarray, grid: _Grid) -> tuple[_Values, np.ndarray, pd.DatetimeIndex]:
    """Cut the matrices to the window ``[w_lo, w_hi]``, then drop all-NaN rows at either edge.

    Returns
    -------
    wide : _Values
        The cut matrices.
    filled : ndarray of bool
        The cut fill mask.
    index : DatetimeIndex
        Their bar open times (``datetime64[us, UTC]``, named ``ts``).
    """
    window = slice(grid.w_lo, grid.w_hi + 1)
    wide = wide.map(lambda v: v[window])
    filled = filled[window]
    alive = ~np.isnan(wide.close).all(axis=1)
    first_row = int(np.argmax(alive))
    last_row = len(alive) - 1 - int(np.argmax(alive[::-1]))
    cut = slice(first_row, last_row + 1)
    index = pd.date_range(
        start=pd.Timestamp(grid.t0 + (grid.w_lo + first_row) * int(grid.step.value), unit="ns", tz="UTC"),
        periods=last_row - first_row + 1,
        freq=grid.step,
        unit="us",
        name="ts",
    )
    return wide.map(lambda v: v[cut]), filled[cut], index


def _price_panel(
    wide: _Values, filled: np.ndarray, index: pd.DatetimeIndex, symbols: list[str], step: pd.Timedelta, path: Path
) -> PricePanel:
    """Wrap the cut matrices into a :class:`PricePanel` (columns ``symbols``, one :class:`GapReport` each)."""
    columns = pd.Index(symbols, name="symbol")
    frames = [None if v is None else pd.DataFrame(v, index=index, columns=columns) for v in wide.fields()]
    return PricePanel(
        close=frames[0],
        high=frames[1],
        low=frames[2],
        volume=frames[3],
        freq=step,
        gaps=tuple(_gap_report(sym, filled[:, j], index) for j, sym in enumerate(symbols)),
        path=path.resolve(),
        sha256=file_sha256(path),
    )


def _window_str(start: pd.Timestamp | None, end: pd.Timestamp | None) -> str:
    """``between start=... and end=...`` naming only the bounds given."""
    if start is not None and end is not None:
        return f"between start={start} and end={end}"
    if start is not None:
        return f"from start={start} on"
    return f"up to end={end}"


def _td_str(td: pd.Timedelta) -> str:
    """``1h``, ``1D``, ``8h``, ``15min``: a short label of a bar length."""
    seconds = int(td.total_seconds())
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return str(td)


def _gap_report(symbol: str, filled: np.ndarray, index: pd.DatetimeIndex) -> GapReport:
    """Runs of ``True`` in ``filled`` → :class:`GapReport`."""
    edges = np.diff(np.r_[0, filled.astype(np.int8), 0])
    run_starts = np.flatnonzero(edges == 1)
    run_ends = np.flatnonzero(edges == -1)
    if run_starts.size == 0:
        return GapReport(symbol, 0, 0, 0, None)
    lengths = run_ends - run_starts
    k = int(np.argmax(lengths))
    return GapReport(
        symbol=symbol,
        n_gaps=int(run_starts.size),
        n_missing_bars=int(lengths.sum()),
        longest_gap_bars=int(lengths[k]),
        longest_gap_start=index[int(run_starts[k])],
    )


# --------------------------------------------------------------------------------------------
# Funding
# --------------------------------------------------------------------------------------------


def load_funding(path: str | Path, symbol: str) -> pd.Series:
    """Funding rate per settlement of one perpetual.

    Parameters
    ----------
    path : str or Path
        Long Parquet file with ``ts`` (settlement time, UTC), ``symbol``, ``interval_h`` and
        ``funding_rate`` (decimal per interval: 0.0001 = 0.01 % of notional per settlement; a
        positive rate means longs pay shorts).
    symbol : str

    Returns
    -------
    pandas.Series
        Named ``"funding_rate"``, float64, indexed by the UTC settlement time (``"ts"``), strictly
        increasing; ``attrs["interval_h"]`` is the settlement interval in hours.

    Raises
    ------
    DataError
        On the generic validation rules, a non-finite rate, a non-positive or non-integer
        ``interval_h``, an unknown symbol, or an ``interval_h`` that changes within the symbol.
    """
    path = Path(path)
    df = read_long(path, required=("ts", "symbol", "interval_h", "funding_rate"))
    ctx = _Ctx(df, path, None, None)
    rate = _numeric(ctx, "funding_rate")
    bad = ~np.isfinite(rate)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        ctx.fail("funding_rate", i, f"expected a finite funding rate, found {float(rate[i])!r}")
    bad = np.abs(rate) > MAX_FUNDING_RATE
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        ctx.fail("funding_rate", i, f"expected |funding_rate| <= {MAX_FUNDING_RATE:g} per interval, found {float(rate[i])!r}")
    interval = _numeric(ctx, "interval_h")
    bad = ~(np.isfinite(interval) & (interval > 0) & (interval == np.round(interval)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        ctx.fail("interval_h", i, f"expected a whole number of hours > 0, found {float(interval[i])!r}")
    mask = (df["symbol"] == symbol).to_numpy(dtype=bool, na_value=False)
    if not mask.any():
        available = ", ".join(sorted(pd.unique(df["symbol"]).tolist()))
        raise DataError(path, f"unknown symbol '{symbol}'; available: {available}", column="symbol")
    idx = np.flatnonzero(mask)
    iv = interval[idx]
    changed = np.flatnonzero(iv != iv[0])
    if changed.size:
        i = int(idx[changed[0]])
        ctx.fail(
            "interval_h",
            i,
            f"expected one settlement interval per symbol ({int(iv[0])} h from row {int(idx[0])}), "
            f"found {interval[i]:g} h",
        )
    index = pd.DatetimeIndex(df["ts"].iloc[idx].array.as_unit("us"), name="ts")
    series = pd.Series(rate[idx], index=index, name="funding_rate", dtype=np.float64)
    series.attrs["interval_h"] = int(iv[0])
    return series


MAX_UNITS = 1e15
"""Largest accepted holding (coin units) in a holdings file, as for ``position.units``."""


def holdings_times(ts: pd.Series, path: Path) -> pd.Series:
    """A holdings file's ``ts`` column as UTC times.

    Every value must carry its time zone: a tz-aware Parquet column, or CSV strings ending in
    ``Z`` or an offset (mixed offsets are each converted to UTC); within 2009 .. 2100.

    Raises
    ------
    DataError
        Naming the first row that is missing, unparseable, without a time zone or out of range.
    """
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        stamps = ts.dt.tz_convert("UTC")
        if stamps.isna().any():
            r = int(np.flatnonzero(stamps.isna().to_numpy())[0])
            raise DataError(path, "expected a timestamp, found a missing value (NaT)", column="ts", row=r)
    elif pd.api.types.is_datetime64_dtype(ts.dtype):
        raise DataError(path, "timestamps must be tz-aware UTC (e.g. 2024-01-01T00:00:00Z)", column="ts", row=0)
    else:
        text = ts.astype(str).str.strip()
        naive = np.flatnonzero(~text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$").to_numpy())
        if naive.size:
            r = int(naive[0])
            raise DataError(path, f"timestamp {text.iloc[r]!r} has no time zone; write it as 2024-01-01T00:00:00Z",
                            column="ts", row=r)
        stamps = pd.Series(pd.NaT, index=ts.index, dtype="datetime64[us, UTC]")
        for i, value in enumerate(text):  # per row: offsets may differ between rows
            try:
                stamps.iat[i] = pd.Timestamp(value).tz_convert("UTC").as_unit("us")
            except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
                raise DataError(path, f"unparseable timestamp {value!r}", column="ts", row=i) from None
    lo, hi = TS_MIN, TS_MAX
    bad = np.flatnonzero(((stamps < lo) | (stamps >= hi)).to_numpy())
    if bad.size:
        r = int(bad[0])
        raise DataError(path, f"expected a time between {lo.date()} and {hi.date()}, found {stamps.iloc[r]}", column="ts", row=r)
    return stamps


def holdings_units(units: pd.Series, path: Path) -> np.ndarray:
    """A holdings file's ``units`` as float64: finite, ``>= 0`` and ``<= MAX_UNITS``."""
    values = pd.to_numeric(units, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > MAX_UNITS))
    if bad.size:
        raise DataError(path, f"expected finite units in [0, {MAX_UNITS:g}], got {units.iloc[bad[0]]!r}",
                        column="units", row=int(bad[0]))
    return values


def check_futures_frame(raw: pd.DataFrame, path: Path) -> None:
    """A user futures price file: no missing ``ts``/``expiry``, times 2009 .. 2100, ``0 < close <= MAX_PRICE``."""
    for col in ("ts", "expiry"):
        nat = np.flatnonzero(raw[col].isna().to_numpy())
        if nat.size:
            raise DataError(path, "expected a timestamp, found a missing value (NaT)", column=col, row=int(nat[0]))
        raw_values = raw[col].array.asi8
        per = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[raw[col].array.unit]
        bad = np.flatnonzero((raw_values < TS_MIN.value // per) | (raw_values >= TS_MAX.value // per))
        if bad.size:
            r = int(bad[0])
            raise DataError(path, f"expected a time between {TS_MIN.date()} and {TS_MAX.date()}, found "
                            f"{_fmt_raw(raw_values[r], raw[col].array.unit)}", column=col, row=r)
    close = pd.to_numeric(raw["close"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(close) | (close <= 0) | (close > MAX_PRICE))
    if bad.size:
        raise DataError(path, f"expected a finite price in (0, {MAX_PRICE:g}], got {close[bad[0]]!r}",
                        column="close", row=int(bad[0]))
def cme_front_month_frames(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spot and futures price files for hedging BTC with the real CME front month, derived from
    the bundled ``cme_btc_front_month_basis_daily.parquet``.

    Both are stamped by CME trade date (``ts`` = day D 00:00 UTC) and hold prices observed at
    the same moment, the CME daily settlement (15:00 America/Chicago; the final settlement at
    16:00 London): spot = the file's ``spot_close`` (Binance BTCUSDT at that time), futures =
    the settlement. On daily bars the bar labelled D therefore carries D's settlement-time
    prices (its nominal close, D+1 00:00 UTC, is 3-8 hours later; nothing later is used).

    Returns
    -------
    spot : DataFrame
        ``ts``, ``symbol`` (``"BTC"``), ``close``: trade dates with a spot price (weekends and
        holidays are gaps for ``data.max_fill_bars`` to fill).
    futures : DataFrame
        ``ts``, ``expiry``, ``close``: each contract on every calendar day from its first
        trade date to the next contract's first trade date ``n`` (days without trading hold
        the last settlement, after expiry the final settlement), with ``expiry`` = ``n + 1 day``
        00:00 UTC, so that on daily bars a front-month-only file rolls into the next contract
        on its first trade date (``roll.days_before_expiry = 0``, ``hour_utc = 0``) and the
        expiring one leaves at its final settlement (``futures.settle_at = "file"``).
    """
    raw = pd.read_parquet(path)
    raw = raw.sort_values("ts", kind="stable")
    have = raw["spot_close"].notna().to_numpy()
    spot = pd.DataFrame({
        "ts": raw.loc[have, "ts"].to_numpy(),
        "symbol": pd.array(["BTC"] * int(have.sum()), dtype="string"),
        "close": raw.loc[have, "spot_close"].to_numpy(dtype=float),
    })
    expiries = list(dict.fromkeys(raw["expiry"]))
    firsts = [raw.loc[raw["expiry"] == e, "ts"].min() for e in expiries]
    parts = []
    for k, e in enumerate(expiries):
        rows = raw.loc[raw["expiry"] == e].set_index("ts")["close"]
        until = firsts[k + 1] if k + 1 < len(expiries) else rows.index[-1] + pd.Timedelta(days=1)
        days = pd.date_range(rows.index[0], until, freq="D", name="ts")
        series = rows.reindex(days).ffill()
        parts.append(pd.DataFrame({"ts": days, "expiry": until + pd.Timedelta(days=1), "close": series.to_numpy()}))
    futures = pd.concat(parts, ignore_index=True)
    futures["expiry"] = pd.DatetimeIndex(futures["expiry"]).tz_convert("UTC")
    return spot, futures
