"""Turn vendor market-data files into hedgebt's long Parquet layout.

Supported formats (``format=``; ``"auto"`` sniffs the extension and the first line)
------------------------------------------------------------------------------------
``binance``
    Binance public-data kline CSV, or a ``.zip`` holding one such CSV. No header (an optional
    ``open_time,...`` header line is accepted), 12 columns: ``open_time, open, high, low, close,
    volume, close_time, quote_volume, trades, taker_buy_base, taker_buy_quote, ignore``.
    ``open_time`` is epoch milliseconds, or microseconds in newer (2025+) files. The unit is
    detected per file from the magnitude (``1e11 <= t < 1e14``: ms, ``1e14 <= t < 1e17``: µs);
    a file mixing units is an error naming the first row whose unit differs from row 0's.
``cryptodatadownload``
    CryptoDataDownload CSV: an optional URL line (``https://www.CryptoDataDownload.com``), then
    ``Unix,Date,Symbol,Open,High,Low,Close,Volume <BASE>,Volume <QUOTE>,tradecount``, newest row
    first. ``Unix`` is epoch ms or s (detected per row: ``t < 1e11`` is seconds, since the vendor has
    switched units within a file); ``Date`` (ISO date/datetime, or ``YYYY-MM-DD HH-AM``) must agree
    with it. ``volume`` is the ``Volume <BASE>`` column, where ``<BASE>`` prefixes ``Symbol``.
``yahoo``
    Yahoo Finance CSV ``Date,Open,High,Low,Close,Adj Close,Volume`` (``Adj Close`` optional), or a
    two-column ``date,value`` close series. Dates are UTC days (``YYYY-MM-DD``), labelled by their
    00:00 open time. Yahoo's crypto volume is in the quote currency (USD), so
    ``volume = Volume / Close`` (an estimate of base units). ``yahoo_shift_days=N`` relabels
    every row ``ts = date + N days``: in series where the value on date D is the close of UTC day
    D-1 (like the bundled RNDR sample) pass ``yahoo_shift_days=-1``. Default 0: no shift.
``freqtrade`` / ``ccxt``
    JSON list of ``[open_time_ms, open, high, low, close, volume]`` rows (freqtrade's ``json``
    data format and ccxt's ``fetch_ohlcv`` result; ``.json.gz`` is read too), or a CSV with the
    header ``date,open,high,low,close,volume`` (freqtrade's DataFrame layout; ``date`` ISO with
    offset or naive-UTC, or epoch ms). Both names parse identically; ``auto`` picks this parser for
    JSON.

All formats produce bars labelled by their UTC open time. A header
``date,open,high,low,close,volume`` fits yahoo (without ``Adj Close``) and freqtrade alike;
``auto`` refuses such files and asks for ``--format``.

Errors name the file, the 0-based data row (``row``) and, for text files, the 1-based ``line``.

Merge rules (:func:`ingest`)
----------------------------
The target is a long Parquet dataset (``ts, symbol, close`` or ``ts, symbol, open, high, low,
close, volume``); it is created if missing. Its columns must equal the ingested ones.

* new ``(symbol, ts)`` bars are added;
* an overlapping bar whose ``open``, ``high``, ``low`` or ``close`` differs by more than
  ``1e-9`` relative (``|a - b| > 1e-9 * max(|a|, |b|)``) is a conflict: a
  :class:`~backtest.errors.DataError` naming the first conflicting ``ts`` and both values, unless
  ``overwrite=True``, which replaces it. ``volume`` is not compared (vendors disagree on it); with
  ``overwrite=True`` a bar whose volume differs is replaced too; otherwise the stored bar is kept;
* overlapping bars that agree are left as stored (``rows_unchanged``).

The dataset is written only when something changed, deterministically (sorted by
``(symbol, ts)``, fixed column order, ``ts`` ``datetime64[us, UTC]``, ``symbol`` string, prices
float64, no index), atomically (temporary file in the same directory, ``fsync``, ``os.replace``)
and only after it passes :func:`backtest.data.validate_long_frame`.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
from filelock import FileLock, Timeout
import pyarrow.parquet as pq

from backtest.atomic import MAX_NAME_BYTES, atomic_file, mark_written
from backtest.data import PRICE_COLUMNS, _check_long_frame, check_input_file, read_long, validate_long_frame
from backtest.errors import ConfigError, DataError, HedgeBTError
from backtest.metrics import plural

__all__ = [
    "Format",
    "IngestReport",
    "read_vendor_file",
    "ingest",
    "FORMATS",
]

Format = Literal["auto", "binance", "cryptodatadownload", "yahoo", "freqtrade", "ccxt"]
FORMATS: tuple[str, ...] = get_args(Format)

OHLCV_COLUMNS: tuple[str, ...] = ("ts", "symbol", "open", "high", "low", "close", "volume")
CLOSE_COLUMNS: tuple[str, ...] = ("ts", "symbol", "close")
MAX_YAHOO_SHIFT_DAYS = 366
"""Largest accepted ``|yahoo_shift_days|`` (a relabelling, not a time machine)."""
CONFLICT_REL_TOL = 1e-9
"""Relative tolerance above which an overlapping bar's OHLC value is a conflict."""

SYMBOL_DTYPE = pd.StringDtype("pyarrow")
"""``symbol`` dtype of hedgebt's Parquet files (Arrow ``large_string``)."""

_BINANCE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume",
    "close_time", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore",
)  # fmt: skip
_OHLCV_HEADER = ("date", "open", "high", "low", "close", "volume")

# Epoch magnitude ranges per unit (values in that unit), 1973-03-03 .. ~5138 / 4.4e3 years.
_UNIT_RANGES: dict[str, tuple[float, float, int]] = {
    # unit: (lower bound inclusive, upper bound exclusive, nanoseconds per unit)
    "s": (1e8, 1e11, 1_000_000_000),
    "ms": (1e11, 1e14, 1_000_000),
    "us": (1e14, 1e17, 1_000),
}


# --------------------------------------------------------------------------------------------
# Parsed file: frame in file order plus where each row came from
# --------------------------------------------------------------------------------------------


@dataclass
class _Parsed:
    """A vendor file parsed in file order."""

    frame: pd.DataFrame  # ts, symbol, value columns; file order
    rows: np.ndarray  # 0-based data row per frame row
    lines: np.ndarray | None  # 1-based text line per frame row (None for JSON)
    note: str = ""  # what the reading left out, for the ingest's report ("" = nothing)


@dataclass
class _Table:
    """A CSV's data rows as strings."""

    names: list[str]  # column names shown in errors (the header, or the format's fixed names)
    cells: pd.DataFrame  # str cells, columns 0..n-1
    lines: np.ndarray  # 1-based line number per data row

    def where(self, i: int) -> str:
        return f"line {int(self.lines[i])}"


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest` did.

    Attributes
    ----------
    rows_added : int
        Bars new to the dataset.
    rows_unchanged : int
        Overlapping bars that agreed with the stored ones (left as stored).
    rows_overwritten : int
        Overlapping bars replaced (only with ``overwrite=True``).
    symbols : tuple of str
        Every symbol in the dataset after the ingest, sorted.
    path : pathlib.Path
        The dataset (as given; a link is written through to its target).
    missing_bars : int
        Bars of the symbol missing between the first and last bar added (at the dataset's bar).
    notes : tuple of str
        What the reading of the inputs left out (e.g. the volume of a plain OHLCV CSV whose
        unit the header does not tell).
    """

    rows_added: int
    rows_unchanged: int
    rows_overwritten: int
    symbols: tuple[str, ...]
    path: Path
    missing_bars: int = 0
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when the dataset file was (re)written."""
        return self.rows_added + self.rows_overwritten > 0


# --------------------------------------------------------------------------------------------
# Reading raw bytes/text
# --------------------------------------------------------------------------------------------


MAX_INPUT_BYTES = 64 * 1024 * 1024
"""Largest accepted vendor file, in bytes after decompression (64 MiB: about 900,000 Binance kline
rows, 20 months of 1-minute bars; split larger downloads, e.g. by month). Parsing peaks near 25
bytes of memory per input byte (a 23 MB file: 630 MB), so this bounds an ingest near 1.7 GB.
Compressed members are read up to this bound, so a small archive that expands to gigabytes is
refused without being expanded."""


def _too_large(path: Path, what: str) -> DataError:
    return DataError(
        path,
        f"{what} is larger than the {MAX_INPUT_BYTES // (1024 * 1024)} MiB ingest limit "
        f"(backtest.ingest.MAX_INPUT_BYTES); split it (e.g. one file per month)",
    )


def _read_bounded(fh, path: Path, what: str) -> bytes:
    """Read a stream, refusing more than :data:`MAX_INPUT_BYTES`."""
    data = fh.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise _too_large(path, what)
    return data


def _read_bytes(path: Path) -> bytes:
    check_input_file(path, "a vendor file (CSV, JSON, .zip or .gz)")
    if path.stat().st_size > MAX_INPUT_BYTES:
        raise _too_large(path, "the file")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip (e.g. freqtrade .json.gz)
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                data = _read_bounded(gz, path, "the decompressed file")
        except (OSError, EOFError) as exc:
            raise DataError(path, f"corrupt gzip file ({exc})") from exc
    return data


def _zip_member(path: Path, data: bytes) -> bytes:
    """The single CSV inside a Binance ``.zip`` (at most :data:`MAX_INPUT_BYTES` uncompressed)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.filename.endswith("/")]
            if len(infos) != 1:
                found = f"{len(infos)} member(s): {', '.join(i.filename for i in infos)}"
                raise DataError(path, f"expected a zip holding one CSV file, found {found}")
            if infos[0].file_size > MAX_INPUT_BYTES:
                raise _too_large(path, f"zip member {infos[0].filename} ({infos[0].file_size} bytes uncompressed)")
            with zf.open(infos[0]) as member:
                return _read_bounded(member, path, f"zip member {infos[0].filename}")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as exc:
        raise DataError(path, f"not a valid zip file ({exc})") from exc


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise DataError(path, "expected a text (CSV/JSON) file, found binary data")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"expected UTF-8 text, found an undecodable byte at offset {exc.start}") from exc


def _nonblank_lines(text: str) -> list[tuple[int, str]]:
    """``(1-based line number, stripped line)`` of the non-blank lines."""
    return [(n, s) for n, line in enumerate(text.splitlines(), start=1) if (s := line.strip())]


def _split_header(line: str) -> list[str]:
    return [c.strip().strip('"').strip() for c in line.split(",")]


def _other_delimiter(line: str) -> str | None:
    """A delimiter other than ',' that the line seems to use."""
    for delim, name in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
        if line.count(delim) >= 1 and line.count(",") == 0:
            return name
    return None


def _table(path: Path, lines: list[tuple[int, str]], names: list[str], header_line: int | None) -> _Table:
    """Split the data lines (after ``header_line``) into string cells; every row must have ``len(names)`` fields."""
    data = lines if header_line is None else [(n, s) for n, s in lines if n > header_line]
    if not data:
        where = f"after the header on line {header_line}" if header_line else "in the file"
        raise DataError(path, f"expected at least one data row {where}, found none", row=0)
    numbers = np.fromiter((n for n, _ in data), dtype=np.int64, count=len(data))
    text = pd.Series([s for _, s in data], dtype=object)
    n_fields = text.str.count(",").to_numpy() + 1
    expected = len(names)
    bad = np.flatnonzero(n_fields != expected)
    if bad.size:
        i = int(bad[0])
        other = _other_delimiter(text.iloc[i])
        hint = f"; the line looks {other}-delimited, hedgebt reads comma-separated files" if other else ""
        raise DataError(
            path,
            f"expected {expected} comma-separated fields, found {int(n_fields[i])}{hint}",
            row=i,
            detail=f"line {int(numbers[i])}",
        )
    cells = text.str.split(",", expand=True, regex=False)
    cells = cells.apply(lambda c: c.str.strip().str.strip('"'))
    cells.columns = range(expected)
    return _Table(names=names, cells=cells, lines=numbers)


# --------------------------------------------------------------------------------------------
# Cell conversion with row-precise errors
# --------------------------------------------------------------------------------------------


def _to_float(path: Path, table: _Table, col: int) -> np.ndarray:
    """Column ``col`` as float64; a cell that is not a number is an error naming its row."""
    raw = table.cells[col]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(np.isnan(values) & ~raw.str.lower().isin(["nan"]).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(
            path,
            f"expected a number, found {raw.iloc[i]!r}",
            column=table.names[col],
            row=i,
            detail=table.where(i),
        )
    return values


def _epoch_to_ns(
    path: Path,
    values: np.ndarray,
    *,
    column: str,
    units: Sequence[str],
    per_row: bool,
    lines: np.ndarray | None,
) -> np.ndarray:
    """Epoch numbers → int64 ns, detecting the unit from the magnitude.

    ``per_row=False``: the whole file must use one unit (that of row 0).
    """

    def where(i: int) -> str | None:
        return None if lines is None else f"line {int(lines[i])}"

    nonint = np.flatnonzero(~np.isfinite(values) | (values != np.floor(values)))
    if nonint.size:
        i = int(nonint[0])
        problem = f"expected an integer epoch time, found {float(values[i])!r}"
        raise DataError(path, problem, column=column, row=i, detail=where(i))
    unit_idx = np.full(values.shape, -1, dtype=np.int64)
    for k, unit in enumerate(units):
        lo, hi, _ = _UNIT_RANGES[unit]
        unit_idx[(values >= lo) & (values < hi)] = k
    unknown = np.flatnonzero(unit_idx < 0)
    if unknown.size:
        i = int(unknown[0])
        names = "/".join("µs" if u == "us" else u for u in units)
        raise DataError(
            path,
            f"epoch time {int(values[i])} is not a plausible time in {names} (1973 or later)",
            column=column,
            row=i,
            detail=where(i),
        )
    if not per_row:
        mixed = np.flatnonzero(unit_idx != unit_idx[0])
        if mixed.size:
            i = int(mixed[0])
            u0, ui = units[int(unit_idx[0])], units[int(unit_idx[i])]
            raise DataError(
                path,
                f"file mixes timestamp units: row 0 is in {u0} but this row is in {ui} ({int(values[i])})",
                column=column,
                row=i,
                detail=where(i),
            )
    # range-check in the detected unit, before converting (9999999999999 ms would wrap int64 ns)
    scale = np.array([_UNIT_RANGES[u][2] for u in units], dtype=np.int64)[unit_idx]
    lo_ns, hi_ns = _ts_bounds_ns()
    lo = lo_ns / scale.astype(np.float64)
    hi = hi_ns / scale.astype(np.float64)
    out = np.flatnonzero((values < lo) | (values > hi))
    if out.size:
        i = int(out[0])
        unit = units[int(unit_idx[i])]
        raise DataError(
            path,
            f"epoch time {int(values[i])} ({'µs' if unit == 'us' else unit}) is {_epoch_str(float(values[i]), int(scale[i]))}, "
            f"outside {_ns_str(lo_ns)} .. {_ns_str(hi_ns)} (2009 to now + 1 day)",
            column=column,
            row=i,
            detail=where(i),
        )
    return values.astype(np.int64) * scale


TS_EARLIEST = pd.Timestamp("2009-01-01", tz="UTC")
"""Earliest accepted bar time (no crypto market before 2009); the latest is now + 1 day."""


def _ts_bounds_ns() -> tuple[int, int]:
    """``(2009-01-01, now + 1 day)`` in int64 nanoseconds."""
    return int(TS_EARLIEST.value), int((time.time() + 86_400) * 1e9)


def _span_text(ns: int) -> str:
    """A bar length in words: ``"1 day"``, ``"1 hour"``, ``"15 minutes"``, ``"90 seconds"``."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count, rest = divmod(int(ns), size * 1_000_000_000)
        if count and not rest:
            return plural(count, unit)
    return f"{int(ns) / 1e9:g} seconds"


def _ns_str(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").strftime("%Y-%m-%d %H:%M")


def _epoch_str(value: float, ns_per_unit: int) -> str:
    """An epoch value as a date, computed in float seconds (no int64 overflow)."""
    import datetime as dt

    try:
        when = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=value * ns_per_unit / 1e9)
    except OverflowError:
        return "beyond the year 9999"
    return when.strftime("%Y-%m-%d %H:%M")


def _check_ts_range(path: Path, ts_ns: np.ndarray, *, column: str, lines: np.ndarray | None, what: str = "") -> None:
    """Every ``ts_ns`` within 2009 .. now + 1 day, else a :class:`DataError` naming the first row."""
    lo_ns, hi_ns = _ts_bounds_ns()
    out = np.flatnonzero((ts_ns < lo_ns) | (ts_ns > hi_ns))
    if out.size:
        i = int(out[0])
        raise DataError(
            path,
            f"time {_ns_str(int(ts_ns[i]))}{what} is outside {_ns_str(lo_ns)} .. {_ns_str(hi_ns)} (2009 to now + 1 day)",
            column=column,
            row=i,
            detail=None if lines is None else f"line {int(lines[i])}",
        )


def _parse_dates(path: Path, table: _Table, col: int, *, formats: Sequence[str]) -> np.ndarray:
    """Date strings → int64 ns UTC; naive values are UTC. Tries ``formats`` in order per row."""
    raw = table.cells[col]
    # microseconds hold any year 1..9999, so out-of-range dates are range-checked, not wrapped
    result = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    todo = np.ones(len(raw), dtype=bool)
    for fmt in formats:
        if not todo.any():
            break
        try:
            parsed = pd.to_datetime(raw[todo], format=fmt, errors="coerce", utc=True)
        except (ValueError, OverflowError):  # e.g. mixed offsets in one column
            continue
        result[todo] = parsed.dt.as_unit("us")
        todo = result.isna().to_numpy()
    if todo.any():
        i = int(np.flatnonzero(todo)[0])
        raise DataError(
            path,
            f"expected a date like 2024-07-22, found {raw.iloc[i]!r}",
            column=table.names[col],
            row=i,
            detail=table.where(i),
        )
    us = result.array.asi8
    lo_ns, hi_ns = _ts_bounds_ns()
    out = np.flatnonzero((us < lo_ns // 1000) | (us > hi_ns // 1000))
    if out.size:
        i = int(out[0])
        raise DataError(
            path,
            f"date {raw.iloc[i]!r} is outside {_ns_str(lo_ns)} .. {_ns_str(hi_ns)} (2009 to now + 1 day)",
            column=table.names[col],
            row=i,
            detail=table.where(i),
        )
    return us * 1000


# --------------------------------------------------------------------------------------------
# Format parsers
# --------------------------------------------------------------------------------------------


def _frame(ts_ns: np.ndarray, symbol: str, values: dict[str, np.ndarray]) -> pd.DataFrame:
    """Long frame in file order: ``ts`` (from int64 ns), ``symbol``, value columns in canonical order."""
    out: dict[str, object] = {
        "ts": pd.to_datetime(ts_ns, unit="ns", utc=True).as_unit("us"),
        "symbol": pd.array([symbol] * len(ts_ns), dtype=SYMBOL_DTYPE),
    }
    for name in OHLCV_COLUMNS[2:]:
        if name in values:
            out[name] = np.asarray(values[name], dtype=np.float64)
    return pd.DataFrame(out)


def _values(path: Path, table: _Table, idx: dict[str, int]) -> dict[str, np.ndarray]:
    """Float columns ``{name: table column idx[name]}``."""
    return {name: _to_float(path, table, col) for name, col in idx.items()}


def _parse_binance(path: Path, data: bytes, symbol: str) -> _Parsed:
    if data[:4] == b"PK\x03\x04":
        data = _zip_member(path, data)
    lines = _nonblank_lines(_decode(path, data))
    if not lines:
        raise DataError(path, "file is empty; expected Binance kline rows", row=0)
    first = _split_header(lines[0][1])
    header_line = lines[0][0] if first and first[0].lower() == "open_time" else None
    table = _table(path, lines, list(_BINANCE_COLUMNS), header_line)
    values = _values(path, table, {c: _BINANCE_COLUMNS.index(c) for c in ("open", "high", "low", "close", "volume")})
    open_time = _to_float(path, table, 0)
    ts = _epoch_to_ns(path, open_time, column="open_time", units=("ms", "us"), per_row=False, lines=table.lines)
    return _Parsed(_frame(ts, symbol, values), np.arange(len(ts)), table.lines)


def _columns(path: Path, header: list[str], header_line: int, needed: Sequence[str], layout: str) -> dict[str, int]:
    """Positions of the ``needed`` columns (case-insensitive); a missing one is an error."""
    low = [h.lower() for h in header]
    missing = [c for c in needed if c not in low]
    if missing:
        raise DataError(
            path,
            f"expected {layout}; missing {', '.join(missing)} in header {','.join(header)!r}",
            detail=f"line {header_line}",
        )
    return {c: low.index(c) for c in needed}


def _parse_cryptodatadownload(path: Path, data: bytes, symbol: str) -> _Parsed:
    lines = _nonblank_lines(_decode(path, data))
    if not lines:
        raise DataError(path, "file is empty; expected a CryptoDataDownload CSV", row=0)
    k = 1 if _is_url_line(lines[0][1]) else 0
    if k >= len(lines):
        raise DataError(path, "expected a header line after the URL line, found end of file", row=0)
    header_line, header = lines[k][0], _split_header(lines[k][1])
    idx = _columns(
        path,
        header,
        header_line,
        ("unix", "date", "open", "high", "low", "close"),
        "CryptoDataDownload columns Unix,Date,Symbol,Open,High,Low,Close,Volume <BASE>",
    )
    table = _table(path, lines, header, header_line)
    pair = _single_pair(path, table)
    values = _values(path, table, {c: idx[c] for c in ("open", "high", "low", "close")})
    values["volume"] = _to_float(path, table, _cdd_volume_column(path, header, pair, symbol, header_line))
    unix = _to_float(path, table, idx["unix"])
    ts = _epoch_to_ns(path, unix, column=header[idx["unix"]], units=("s", "ms"), per_row=True, lines=table.lines)
    date_ns = _parse_dates(path, table, idx["date"], formats=("ISO8601", "%Y-%m-%d %I-%p"))
    mismatch = np.flatnonzero(date_ns != ts)
    if mismatch.size:
        i = int(mismatch[0])
        raise DataError(
            path,
            f"Unix time {int(unix[i])} ({pd.Timestamp(int(ts[i]), tz='UTC')}) disagrees with Date "
            f"{table.cells[idx['date']].iloc[i]!r}",
            column=header[idx["unix"]],
            row=i,
            detail=table.where(i),
        )
    return _Parsed(_frame(ts, symbol, values), np.arange(len(ts)), table.lines)


def _single_pair(path: Path, table: _Table) -> str:
    """The file's ``Symbol`` value (e.g. ``FETUSDT``); one pair per file. ``""`` without the column."""
    low = [n.lower() for n in table.names]
    if "symbol" not in low:
        return ""
    col = low.index("symbol")
    cells = table.cells[col]
    pair = str(cells.iloc[0])
    differs = np.flatnonzero((cells != pair).to_numpy())
    if differs.size:
        i = int(differs[0])
        raise DataError(
            path,
            f"expected one symbol per file ({pair!r} on row 0), found {cells.iloc[i]!r}",
            column=table.names[col],
            row=i,
            detail=table.where(i),
        )
    return pair


def _is_url_line(line: str) -> bool:
    low = line.lower()
    return low.startswith(("http://", "https://", "www.")) or "cryptodatadownload" in low


def _cdd_volume_column(path: Path, header: list[str], pair: str, symbol: str, header_line: int) -> int:
    """Index of the ``Volume <BASE>`` column: the currency that prefixes the pair (or equals ``symbol``)."""
    vols = {i: m.group(1) for i, h in enumerate(header) if (m := re.fullmatch(r"(?i)volume\s+(\S+)", h))}
    pair_up = pair.upper().replace("/", "").replace("-", "")
    by_pair = [i for i, cur in vols.items() if pair_up.startswith(cur.upper())]
    if len(by_pair) == 1:
        return by_pair[0]
    by_symbol = [i for i, cur in vols.items() if cur.upper() == symbol.upper()]
    if len(by_symbol) == 1:
        return by_symbol[0]
    raise DataError(
        path,
        f"cannot tell which volume column is in base units: found {', '.join(header[i] for i in vols) or 'none'} "
        f"for pair {pair!r} and symbol {symbol!r}; expected 'Volume <BASE>'",
        column="Volume",
        detail=f"line {header_line}",
    )


def _parse_yahoo(path: Path, data: bytes, symbol: str, shift_days: int) -> _Parsed:
    lines = _nonblank_lines(_decode(path, data))
    if not lines:
        raise DataError(path, "file is empty; expected a Yahoo CSV", row=0)
    header_line, header = lines[0][0], _split_header(lines[0][1])
    if [h.lower() for h in header] == ["date", "value"]:
        idx = {"date": 0, "close": 1}
    else:
        other = _other_delimiter(lines[0][1])
        hint = f" (the header looks {other}-delimited, hedgebt reads comma-separated files)" if other else ""
        idx = _columns(
            path,
            header,
            header_line,
            ("date", "open", "high", "low", "close", "volume"),
            f"a Yahoo header Date,Open,High,Low,Close,Adj Close,Volume or date,value{hint}",
        )
    table = _table(path, lines, header, header_line)
    values = _values(path, table, {k: v for k, v in idx.items() if k != "date"})
    if "volume" in values:
        # USD volume -> base units (estimate); a non-positive close is refused by validation
        # afterwards, so divide only where it is meaningful instead of warning here
        close = values["close"]
        values["volume"] = np.divide(values["volume"], close, out=np.full_like(close, np.nan), where=close > 0)
    ts = _parse_dates(path, table, idx["date"], formats=("%Y-%m-%d",))
    _check_ts_range(path, ts, column=header[idx["date"]], lines=table.lines)
    if abs(shift_days) > MAX_YAHOO_SHIFT_DAYS:
        raise ConfigError(
            "ingest.yahoo_shift_days",
            f"expected a shift of at most {MAX_YAHOO_SHIFT_DAYS} days either way (usually -1 or 0), got {shift_days}",
        )
    ts = ts + np.int64(shift_days) * np.int64(86_400_000_000_000)
    _check_ts_range(path, ts, column=header[idx["date"]], lines=table.lines, what=f" after --yahoo-shift-days {shift_days}")
    return _Parsed(_frame(ts, symbol, values), np.arange(len(ts)), table.lines)


def _parse_ohlcv_rows(path: Path, data: bytes, symbol: str) -> _Parsed:
    """freqtrade/ccxt: JSON rows ``[ms, o, h, l, c, v]`` or a ``date,open,...`` CSV."""
    text = _decode(path, data)
    if not text.strip():
        raise DataError(path, "file is empty; expected OHLCV rows [[open_time_ms, o, h, l, c, v], ...]", row=0)
    if text.lstrip().startswith("["):
        return _parse_json_rows(path, text, symbol)
    lines = _nonblank_lines(text)
    header_line, header = lines[0][0], _split_header(lines[0][1])
    if [h.lower() for h in header] != list(_OHLCV_HEADER):
        raise DataError(
            path,
            f"expected freqtrade/ccxt JSON rows or a CSV header {','.join(_OHLCV_HEADER)}; found {lines[0][1]!r}",
            detail=f"line {header_line}",
        )
    table = _table(path, lines, header, header_line)
    values = _values(path, table, {c: k for k, c in enumerate(_OHLCV_HEADER) if c != "date"})
    if table.cells[0].str.fullmatch(r"\d+").all():
        epoch = _to_float(path, table, 0)
        ts = _epoch_to_ns(path, epoch, column=header[0], units=("ms",), per_row=False, lines=table.lines)
    else:
        ts = _parse_dates(path, table, 0, formats=("ISO8601",))
        _check_ts_range(path, ts, column=header[0], lines=table.lines)
    return _Parsed(_frame(ts, symbol, values), np.arange(len(ts)), table.lines)


def _parse_json_rows(path: Path, text: str, symbol: str) -> _Parsed:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError:
        raise DataError(path, "JSON nested too deeply; expected a list of [open_time_ms, o, h, l, c, v] rows") from None
    if not isinstance(rows, list):
        found = type(rows).__name__
        raise DataError(path, f"expected a JSON list of [open_time_ms, o, h, l, c, v] rows, found a {found}")
    if not rows:
        raise DataError(path, "expected at least one [open_time_ms, o, h, l, c, v] row, found an empty list", row=0)
    for i, r in enumerate(rows):  # shape check; cheap compared with json.loads
        if not isinstance(r, list) or len(r) != 6:
            shown = json.dumps(r)[:80]
            problem = f"expected a row [open_time_ms, open, high, low, close, volume], found {shown}"
            raise DataError(path, problem, row=i)
        for j, v in enumerate(r):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                name = ("open_time", "open", "high", "low", "close", "volume")[j]
                raise DataError(path, f"expected a number, found {json.dumps(v)}", column=name, row=i)
    arr = np.asarray(rows, dtype=np.float64)
    ts = _epoch_to_ns(path, arr[:, 0], column="open_time", units=("ms",), per_row=False, lines=None)
    values = dict(zip(("open", "high", "low", "close", "volume"), arr[:, 1:].T, strict=True))
    return _Parsed(_frame(ts, symbol, values), np.arange(len(ts)), None)


# --------------------------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------------------------


class _Ambiguous(Exception):
    """The header fits several formats (resolved by :func:`_parse_agreeing`)."""

    def __init__(self, candidates: tuple[str, ...], first: str, line: int) -> None:
        super().__init__(first)
        self.candidates, self.first, self.line = candidates, first, line


def _parse_as(path: Path, data: bytes, symbol: str, fmt: str, yahoo_shift_days: int) -> _Parsed:
    if fmt == "binance":
        return _parse_binance(path, data, symbol)
    if fmt == "cryptodatadownload":
        return _parse_cryptodatadownload(path, data, symbol)
    if fmt == "yahoo":
        return _parse_yahoo(path, data, symbol, yahoo_shift_days)
    return _parse_ohlcv_rows(path, data, symbol)


def _parse_agreeing(path: Path, data: bytes, symbol: str, amb: _Ambiguous) -> tuple[_Parsed, str]:
    """Read a file whose header fits several formats with each of them; accept it when every
    format that can read it gives the same bars, else refuse naming the formats and asking
    for ``--format``.

    A plain ``date,open,high,low,close,volume`` CSV fits yahoo, freqtrade and ccxt, which
    agree on every column but ``volume`` (yahoo's is in USD, the others' in base units).
    Such a file is accepted with the prices all formats agree on and without ``volume`` (a
    dataset of ``open, high, low, close``; no impact term from it), and the ingest's report
    says so; ``--format`` keeps it.
    """
    results: dict[str, _Parsed] = {}
    for fmt in amb.candidates:
        try:
            results[fmt] = _parse_as(path, data, symbol, fmt, 0)
        except HedgeBTError:
            continue
    frames = list(results.values())
    if frames and all(f.frame.equals(frames[0].frame) for f in frames[1:]):
        return frames[0], next(iter(results))
    if len(frames) > 1 and "volume" in frames[0].frame.columns and all(
        f.frame.drop(columns="volume").equals(frames[0].frame.drop(columns="volume")) for f in frames[1:]
    ):
        first = frames[0]
        frame = first.frame.drop(columns="volume")
        note = (f"{path.name}: volume not stored: its header fits {', '.join(results)}, which read volume in "
                "different units (yahoo in USD, freqtrade/ccxt in base units); pass --format to keep it")
        return _Parsed(frame, first.rows, first.lines, note), "ohlcv"
    groups: list[list[str]] = []
    for fmt, parsed in results.items():
        for g in groups:
            if results[g[0]].frame.equals(parsed.frame):
                g.append(fmt)
                break
        else:
            groups.append([fmt])
    differ = ""
    if len(groups) > 1:
        a, b = results[groups[0][0]].frame, results[groups[1][0]].frame
        cols = [c for c in a.columns if c in b.columns and not a[c].equals(b[c])]
        differ = (f": {'/'.join(groups[0])} and {'/'.join(groups[1])} read column(s) {', '.join(cols)} "
                  "differently (yahoo takes volume in USD and divides it by the close)")
    raise DataError(
        path,
        f"ambiguous format: the header {amb.first!r} fits {', '.join(amb.candidates)}{differ}; pass --format "
        "(format=) to say which the file is",
        detail=f"line {amb.line}",
    )


def _detect(path: Path, data: bytes) -> str:
    """Sniff the format from the extension and the first line (see the module docstring)."""
    name = path.name.lower()
    if data[:4] == b"PK\x03\x04" or name.endswith(".zip"):
        return "binance"
    if data[:4] == b"PAR1":
        raise DataError(path, "this is a Parquet file; ingest reads vendor CSV, JSON or Binance .zip files")
    text_head = data[:65536]
    if b"\x00" in text_head[:4096]:
        raise DataError(path, "unsupported file: binary data; expected CSV, JSON or a Binance .zip")
    head = text_head.decode("utf-8-sig", errors="replace")
    if not head.strip():
        raise DataError(path, "file is empty; cannot detect its format", row=0)
    if head.lstrip().startswith("[") or name.endswith((".json", ".json.gz")):
        return "freqtrade"
    first_no, first = next((n, s) for n, s in _nonblank_lines(head))
    if _is_url_line(first):
        return "cryptodatadownload"
    cells = [c.lower() for c in _split_header(first)]
    candidates: list[str] = []
    if "unix" in cells and "date" in cells:
        candidates.append("cryptodatadownload")
    if cells == ["date", "value"] or ("adj close" in cells and "date" in cells):
        candidates.append("yahoo")
    if cells == list(_OHLCV_HEADER):
        candidates += ["yahoo", "freqtrade", "ccxt"]
    if cells and cells[0] == "open_time" or (len(cells) == len(_BINANCE_COLUMNS) and cells[0].isdigit()):
        candidates.append("binance")
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise _Ambiguous(tuple(dict.fromkeys(candidates)), first, first_no)
    other = _other_delimiter(first)
    hint = f"; the line looks {other}-delimited, hedgebt reads comma-separated files" if other else ""
    raise DataError(
        path,
        f"unsupported format: cannot recognise the first line {first[:80]!r}{hint}; supported: "
        f"{', '.join(f for f in FORMATS if f != 'auto')} (pass --format to choose)",
        detail=f"line {first_no}",
    )


# --------------------------------------------------------------------------------------------
# Public reading API
# --------------------------------------------------------------------------------------------


def _check_symbol_arg(symbol: str) -> None:
    if not isinstance(symbol, str) or not symbol or any(c.isspace() or c == "," or not c.isprintable() for c in symbol):
        raise ConfigError(
            "ingest.symbol", f"expected a non-empty symbol such as 'FET' without spaces or commas, got {symbol!r}"
        )


def _read_parsed(path: str | Path, *, symbol: str, format: Format, yahoo_shift_days: int) -> tuple[_Parsed, str]:
    """Parse and validate one vendor file; return rows sorted by ts with their file rows."""
    path = Path(path)
    _check_symbol_arg(symbol)
    if format not in FORMATS:
        raise ConfigError("ingest.format", f"expected one of {', '.join(FORMATS)}, got {format!r}")
    if isinstance(yahoo_shift_days, bool) or not isinstance(yahoo_shift_days, (int, np.integer)):
        raise ConfigError("ingest.yahoo_shift_days", f"expected an integer number of days, got {yahoo_shift_days!r}")
    data = _read_bytes(path)
    parsed: _Parsed | None = None
    if format != "auto":
        fmt = format
    else:
        try:
            fmt = _detect(path, data)
        except _Ambiguous as amb:
            if yahoo_shift_days and "yahoo" in amb.candidates:
                fmt = "yahoo"  # only yahoo files take a shift
            else:
                parsed, fmt = _parse_agreeing(path, data, symbol, amb)
    if yahoo_shift_days and fmt != "yahoo":
        raise ConfigError("ingest.yahoo_shift_days", f"only applies to yahoo files, but {path} is read as {fmt}")
    if not data.strip():
        raise DataError(path, "file is empty", row=0)
    if parsed is None:
        parsed = _parse_as(path, data, symbol, fmt, int(yahoo_shift_days))

    frame = parsed.frame
    price_cols = [c for c in PRICE_COLUMNS if c in frame.columns]
    # Value and uniqueness checks in file order (vendor files may be newest-first).
    _check_long_frame(
        frame,
        file=path,
        price_columns=price_cols,
        row_numbers=parsed.rows,
        line_numbers=parsed.lines,
        check_order=False,
    )
    order = np.argsort(frame["ts"].array.asi8, kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    sorted_parsed = _Parsed(
        frame, parsed.rows[order], None if parsed.lines is None else parsed.lines[order], parsed.note
    )
    validate_long_frame(frame, file=str(path), price_columns=price_cols)
    return sorted_parsed, fmt


def read_vendor_file(
    path: str | Path, *, symbol: str, format: Format = "auto", yahoo_shift_days: int = 0
) -> pd.DataFrame:
    """Read one vendor file into a validated long frame.

    Parameters
    ----------
    path : str or Path
    symbol : str
        Symbol written to every row (e.g. ``"FET"``; the vendor's pair name is not used).
    format : {"auto", "binance", "cryptodatadownload", "yahoo", "freqtrade", "ccxt"}
        See the module docstring; ``"auto"`` sniffs extension and first line.
    yahoo_shift_days : int
        Yahoo only: ``ts = date + yahoo_shift_days`` days (``-1`` when the value on date D is the
        close of day D-1).

    Returns
    -------
    pandas.DataFrame
        Columns ``ts, symbol, open, high, low, close, volume`` (``ts, symbol, close`` for
        close-only files), sorted by ``ts``, ``RangeIndex``; ``ts`` is ``datetime64[us, UTC]``
        (bar open time), ``symbol`` a string, values float64 without NaN.

    Raises
    ------
    DataError
        If the file is missing, empty, of an unknown or ambiguous format, or has a malformed
        row (the message names the file, the row and the line).
    ConfigError
        On a bad ``symbol``, ``format`` or ``yahoo_shift_days`` (non-zero for a non-yahoo file).
    """
    parsed, _ = _read_parsed(path, symbol=symbol, format=format, yahoo_shift_days=yahoo_shift_days)
    return parsed.frame


# --------------------------------------------------------------------------------------------
# Merge and atomic write
# --------------------------------------------------------------------------------------------


def _canonical(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Fixed column order and dtypes, sorted by (symbol, ts), ``RangeIndex``."""
    out = pd.DataFrame(
        {
            "ts": df["ts"].dt.tz_convert("UTC").array.as_unit("us"),
            "symbol": df["symbol"].astype(SYMBOL_DTYPE),
            **{c: df[c].to_numpy(dtype=np.float64) for c in columns if c not in ("ts", "symbol")},
        }
    )
    return out.sort_values(["symbol", "ts"], kind="mergesort", ignore_index=True)[list(columns)]


def _write_parquet(table: pa.Table, fh: io.BufferedWriter) -> None:
    """Write ``table`` to an open binary file (the seam tests patch to simulate a crash)."""
    pq.write_table(table, fh, compression="snappy")


def _atomic_write(df: pd.DataFrame, target: Path) -> None:
    """Write ``df`` to ``target`` with :func:`backtest.atomic.atomic_file` (temp file, fsync, replace)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as tmp, open(tmp, "wb") as fh:
        _write_parquet(table, fh)
        fh.flush()
    mark_written(target)


LOCK_TIMEOUT_S = 600.0
"""How long an ingest waits for another ingest into the same dataset to finish."""


def _dataset_path(into: str | Path) -> Path:
    """:func:`_resolve_dataset`, with OS-level path errors (name too long, ...) as one-line errors."""
    try:
        return _resolve_dataset(into)
    except OSError as exc:
        raise DataError(str(into)[:80], f"unusable dataset path ({exc.strerror})") from None


def _resolve_dataset(into: str | Path) -> Path:
    """The file to write: a symbolic link is followed to its target (written through, the link kept).

    Raises
    ------
    DataError
        For a dangling link or a link loop, or a target that exists but is not a regular file.
    """
    target = Path(into)
    if str(into).strip() == "":
        raise ConfigError("ingest.into", "expected a dataset path such as data/prices.parquet, got ''")
    if len(os.fsencode(target.name)) > MAX_NAME_BYTES:
        raise ConfigError("ingest.into", f"file name is {len(os.fsencode(target.name))} bytes long; the limit is {MAX_NAME_BYTES}")
    if target.is_symlink():
        try:
            real = target.resolve(strict=True)
        except (OSError, RuntimeError):
            check_input_file(target, "a Parquet dataset")  # names the loop / dangling link
            raise  # pragma: no cover
        target = real
    target = Path(os.path.realpath(target))  # a linked parent folder is written through too
    if target.exists():
        check_input_file(target, "a Parquet dataset")
        return target
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DataError(target, f"cannot create the dataset: {ancestor} is not a folder")
    return target


def _bar_of(ts_ns: np.ndarray) -> int | None:
    """Smallest step between consecutive bars (ns), or None with fewer than two bars."""
    if ts_ns.size < 2:
        return None
    return int(np.diff(np.sort(ts_ns)).min())


def _check_bar_size(old: pd.DataFrame, new: pd.DataFrame, target: Path, paths: list[Path], symbol: str) -> None:
    """The new bars must have the dataset's bar size and lie on its grid.

    The dataset's bar is the smallest step between two bars of any symbol in it; the new bars'
    the smallest step between them. Both known and different, or a new bar off the dataset's
    grid (``(ts - first stored ts) % bar != 0``), is a :class:`DataError` naming the row.
    """
    steps = [
        b
        for _, g in old.groupby("symbol", sort=False, observed=True)
        if (b := _bar_of(g["ts"].array.as_unit("ns").asi8)) is not None
    ]
    if not steps:
        return
    bar = min(steps)
    new_ts = new["ts"].array.as_unit("ns").asi8
    new_bar = _bar_of(new_ts)
    origin = int(old["ts"].array.as_unit("ns").asi8.min())
    off = np.flatnonzero((new_ts - origin) % bar != 0)
    if (new_bar is not None and new_bar != bar) or off.size:
        i = int(off[0]) if off.size else int(np.argmin(np.diff(new_ts))) + 1
        raise DataError(
            paths[int(new["_src"].iat[i])],
            f"bar size does not match the dataset {target}: its bars are {_span_text(bar)} apart"
            + (f", these {_span_text(new_bar)}" if new_bar is not None and new_bar != bar else "")
            + ("" if not off.size else f", and this bar is off its grid (first stored bar {_ns_str(origin)})"),
            column="ts",
            row=int(new["_row"].iat[i]),
            detail=_where(new, i, symbol),
        )


def _missing_in_added(merged: pd.DataFrame, added_ts: np.ndarray, symbol: str, bar: int | None) -> int:
    """Bars missing for ``symbol`` between the first and last bar added (0 when the bar is unknown)."""
    if bar is None or added_ts.size == 0:
        return 0
    ts = merged.loc[(merged["symbol"] == symbol).to_numpy(dtype=bool, na_value=False), "ts"].array.as_unit("ns").asi8
    lo, hi = int(added_ts.min()), int(added_ts.max())
    present = int(((ts >= lo) & (ts <= hi)).sum())
    return int((hi - lo) // bar + 1 - present)


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b| > 1e-9 * max(|a|, |b|)`` elementwise."""
    return np.abs(a - b) > CONFLICT_REL_TOL * np.maximum(np.abs(a), np.abs(b))


def _first_differing(a: pd.DataFrame, i: int, b: pd.DataFrame, j: int, columns: Sequence[str]) -> str:
    """First of ``columns`` whose value differs between ``a`` row ``i`` and ``b`` row ``j``."""
    for c in columns:
        if _differs(np.array([float(a[c].iat[i])]), np.array([float(b[c].iat[j])]))[0]:
            return c
    raise AssertionError("rows do not differ")  # pragma: no cover


def _where(df: pd.DataFrame, i: int, symbol: str) -> str:
    line = int(df["_line"].iat[i])
    parts = [f"line {line}"] if line > 0 else []
    parts += [f"symbol '{symbol}'", f"ts {df['ts'].iat[i]}"]
    return ", ".join(parts)


def _read_inputs(
    paths: list[Path], *, symbol: str, format: Format, yahoo_shift_days: int
) -> tuple[pd.DataFrame, tuple[str, ...], tuple[str, ...]]:
    """Parse every input; merge identical overlapping bars; refuse inputs that disagree.

    Returns the bars sorted by ``ts`` with provenance columns ``_src`` (input index), ``_row`` and
    ``_line``, the data columns, and the readings' notes (see :class:`IngestReport`).
    """
    frames: list[pd.DataFrame] = []
    columns: tuple[str, ...] = ()
    notes: list[str] = []
    for k, p in enumerate(paths):
        parsed, _ = _read_parsed(p, symbol=symbol, format=format, yahoo_shift_days=yahoo_shift_days)
        if parsed.note:
            notes.append(parsed.note)
        cols = tuple(parsed.frame.columns)
        if frames and cols != columns:
            raise DataError(
                p,
                f"provides columns {', '.join(cols)} but {paths[0]} provides {', '.join(columns)}; "
                f"ingest them separately",
            )
        columns = cols
        f = parsed.frame.copy()
        f["_src"] = k
        f["_row"] = parsed.rows
        f["_line"] = -1 if parsed.lines is None else parsed.lines
        frames.append(f)
    new = pd.concat(frames, ignore_index=True)
    new = new.iloc[np.lexsort((new["_src"].to_numpy(), new["ts"].array.asi8))].reset_index(drop=True)
    ts_ns = new["ts"].array.asi8
    dup = np.r_[False, ts_ns[1:] == ts_ns[:-1]]  # only across inputs: each input has unique ts
    if dup.any():
        value_cols = [c for c in columns if c not in ("ts", "symbol")]
        later = np.flatnonzero(dup)
        clash = np.zeros(later.size, dtype=bool)
        for c in value_cols:
            v = new[c].to_numpy(np.float64)
            clash |= _differs(v[later - 1], v[later])
        if clash.any():
            b = int(later[clash][0])
            a = b - 1
            col = _first_differing(new, a, new, b, value_cols)
            raise DataError(
                paths[int(new["_src"].iat[b])],
                f"input files disagree on {col} at ts {new['ts'].iat[b]}: {float(new[col].iat[a])!r} in "
                f"{paths[int(new['_src'].iat[a])]} vs {float(new[col].iat[b])!r} here",
                column=col,
                row=int(new["_row"].iat[b]),
                detail=_where(new, b, symbol),
            )
        new = new.loc[~dup].reset_index(drop=True)
    return new, columns, tuple(notes)


def ingest(
    paths: Sequence[str | Path],
    *,
    symbol: str,
    into: str | Path,
    format: Format = "auto",
    overwrite: bool = False,
    yahoo_shift_days: int = 0,
) -> IngestReport:
    """Read vendor files and merge their bars into a long Parquet dataset.

    Parameters
    ----------
    paths : sequence of str or Path
        Vendor files, all of one symbol (e.g. monthly Binance zips). Bars present in several
        inputs must agree (``1e-9`` relative, all value columns).
    symbol : str
        Symbol of the bars.
    into : str or Path
        Target dataset; created if missing.
    format : Format
        See :func:`read_vendor_file`.
    overwrite : bool
        Replace stored bars that differ from the new ones instead of refusing conflicts.
    yahoo_shift_days : int
        See :func:`read_vendor_file`.

    Returns
    -------
    IngestReport

    Raises
    ------
    DataError
        On a bad input file, inputs that disagree with each other on a bar, a target whose
        columns differ from the ingested ones, or (without ``overwrite``) a conflicting bar.
    ConfigError
        On bad arguments (no paths, bad symbol/format/shift).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigError("ingest.paths", "expected at least one input file")
    new, columns, notes = _read_inputs(paths, symbol=symbol, format=format, yahoo_shift_days=yahoo_shift_days)
    target = _dataset_path(into)
    lock = FileLock(str(target.with_name(f".{target.name}.lock")), timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise DataError(target, f"locked by another ingest for more than {LOCK_TIMEOUT_S:g} s ({lock.lock_file})") from None
    except OSError as exc:
        raise DataError(target, f"cannot create the lock file {lock.lock_file}: {exc.strerror}") from None
    try:
        report = _merge_into(target, new, columns, paths=paths, symbol=symbol, overwrite=overwrite, shown=Path(into))
        return replace(report, notes=notes)
    finally:
        lock.release()


def _merge_into(
    target: Path, new: pd.DataFrame, columns: tuple[str, ...], *, paths: list[Path], symbol: str, overwrite: bool,
    shown: Path,
) -> IngestReport:
    """Merge parsed bars into the dataset (called with the dataset's lock held)."""
    value_cols = [c for c in columns if c not in ("ts", "symbol")]
    ohlc_cols = [c for c in value_cols if c in PRICE_COLUMNS]

    if target.exists():
        old = read_long(target)
        if set(old.columns) != set(columns):
            raise DataError(
                target,
                f"dataset has columns {', '.join(map(str, old.columns))} but the ingested data has "
                f"{', '.join(columns)}; ingest into a separate dataset",
            )
    else:
        old = pd.DataFrame({c: pd.Series(dtype=new[c].dtype) for c in columns})
    _check_bar_size(old, new, target, paths, symbol)
    mine = np.flatnonzero((old["symbol"] == symbol).to_numpy(dtype=bool, na_value=False))
    old_this = old.iloc[mine]  # ts strictly increasing (validated)

    # ---- overlap of new bars with the stored bars of this symbol --------------------------------
    old_ts = old_this["ts"].array.as_unit("ns").asi8
    new_ts = new["ts"].array.as_unit("ns").asi8
    pos = np.searchsorted(old_ts, new_ts)
    overlap = np.zeros(len(new_ts), dtype=bool)
    if old_ts.size:
        overlap = (pos < old_ts.size) & (old_ts[np.minimum(pos, old_ts.size - 1)] == new_ts)
    ov_new = np.flatnonzero(overlap)
    ov_old = pos[ov_new]
    conflict = np.zeros(ov_new.size, dtype=bool)
    differs = np.zeros(ov_new.size, dtype=bool)
    for c in value_cols:
        d = _differs(old_this[c].to_numpy(np.float64)[ov_old], new[c].to_numpy(np.float64)[ov_new])
        differs |= d
        if c in ohlc_cols:
            conflict |= d
    if conflict.any() and not overwrite:
        k = int(np.flatnonzero(conflict)[0])
        i, j = int(ov_new[k]), int(ov_old[k])
        col = _first_differing(old_this, j, new, i, ohlc_cols)
        raise DataError(
            paths[int(new["_src"].iat[i])],
            f"bar conflicts with the dataset {target}: {col} is {float(old_this[col].iat[j])!r} there but "
            f"{float(new[col].iat[i])!r} here ({int(conflict.sum())} conflicting bar(s) in total); "
            f"pass --overwrite (overwrite=True) to replace them",
            column=col,
            row=int(new["_row"].iat[i]),
            detail=_where(new, i, symbol),
        )
    replaced = differs if overwrite else np.zeros(ov_new.size, dtype=bool)
    rows_added = int(len(new) - ov_new.size)
    rows_overwritten = int(replaced.sum())
    rows_unchanged = int(ov_new.size - rows_overwritten)

    if target.exists() and rows_added == 0 and rows_overwritten == 0:
        symbols = tuple(sorted(pd.unique(old["symbol"]).tolist()))
        return IngestReport(rows_added, rows_unchanged, rows_overwritten, symbols, shown)

    take_new = ~overlap
    take_new[ov_new[replaced]] = True
    keep_old = np.ones(len(old), dtype=bool)
    keep_old[mine[ov_old[replaced]]] = False
    merged = _canonical(
        pd.concat([old.loc[keep_old, list(columns)], new.loc[take_new, list(columns)]], ignore_index=True),
        columns,
    )
    validate_long_frame(merged, file=str(target), price_columns=ohlc_cols)
    _atomic_write(merged, target)
    symbols = tuple(sorted(pd.unique(merged["symbol"]).tolist()))
    steps = [b for _, g in merged.groupby("symbol", sort=False, observed=True)
             if (b := _bar_of(g["ts"].array.as_unit("ns").asi8)) is not None]
    added_ts = new_ts[take_new & ~np.isin(np.arange(len(new_ts)), ov_new)] if rows_added else new_ts[:0]
    missing = _missing_in_added(merged, added_ts, symbol, min(steps) if steps else None)
    return IngestReport(rows_added, rows_unchanged, rows_overwritten, symbols, shown, missing)
