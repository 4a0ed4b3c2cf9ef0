"""The hedge instrument's underlying: the built AI index or one symbol of the price data.

``[futures] underlying = "index"`` (the default) shorts futures on the index built
from ``[index]`` constituents. Any other value names a symbol of the price file(s)
(``"BTC"``, ``"ETH"``, ...): the futures are then written on that symbol, and the
"index level" the contract machinery reads (dated futures ``F = S exp(b tau)``,
perpetual mark ``S (1 + premium)``, rolls, funding, margin) is that symbol's close
``S[t]`` itself -- no index is built and the ``[index]`` section is ignored.

:func:`symbol_underlying` wraps such a close as an :class:`~backtest.index.IndexResult`
(one constituent held with one unit), so everything downstream of the index is
unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from backtest.errors import ConfigError
from backtest.index import IndexResult, IndexSpec

__all__ = ["INDEX", "is_index", "available_symbols", "check_underlying", "symbol_underlying"]

#: the value of ``futures.underlying`` that selects the built AI index
INDEX = "index"


def is_index(underlying: str) -> bool:
    """True when ``underlying`` selects the built index rather than a symbol."""
    return underlying == INDEX


def available_symbols(paths: Sequence[Path]) -> tuple[str, ...]:
    """Sorted symbols of the long-format price files (reads the ``symbol`` column only).

    Unreadable files contribute nothing here; the price loader reports them with
    file, column and row.
    """
    found: set[str] = set()
    for path in paths:
        try:
            found |= set(pd.read_parquet(path, columns=["symbol"])["symbol"].astype(str).unique())
        except Exception:  # noqa: BLE001 - reported by backtest.data.load_panel
            continue
    return tuple(sorted(found))


def check_underlying(underlying: str, paths: Sequence[Path]) -> None:
    """Raise :class:`ConfigError` (key ``futures.underlying``) if the symbol is in no price file.

    The message names the symbol and lists the available ones.
    """
    if is_index(underlying):
        return
    symbols = available_symbols(paths)
    if symbols and underlying not in symbols:
        names = ", ".join(p.name for p in paths)
        raise ConfigError(
            "futures.underlying",
            f"unknown symbol '{underlying}' (not in {names}); expected 'index' or one of: {', '.join(symbols)}",
        )


def symbol_underlying(close: pd.Series, high: pd.Series | None, symbol: str) -> IndexResult:
    """A symbol's close as the futures underlying, in the shape of a built index.

    ``level[t] = close[t]`` from the symbol's first price on (NaN before), ``high[t]``
    the symbol's bar high where known (NaN elsewhere and at the first bar, as for a
    built index). The one "rebalance" holds one unit of the symbol at weight 1.

    Parameters
    ----------
    close : Series
        The symbol's closes on the replay grid (USD).
    high : Series or None
        The symbol's bar highs on the same grid, if an OHLC file has them.
    symbol : str
    """
    first = close.first_valid_index()
    if first is None:
        raise ConfigError("futures.underlying", f"symbol '{symbol}' has no price in the data period")
    level = close.astype(float).where(close.index >= first)
    hi = pd.Series(np.nan, index=close.index, name=symbol)
    if high is not None:
        hi = high.reindex(close.index).astype(float)
        hi = hi.where(~(hi < level), level).where(close.index > first)
    stamp = pd.DatetimeIndex([first], name="ts")
    spec = IndexSpec(constituents=(symbol,), weighting="equal", rebalance="monthly", min_history_days=0,
                     max_weight=None, min_constituents=1, base_level=float(close.loc[first]))
    return IndexResult(
        level=level.rename("level"),
        high=hi.rename("high"),
        weights=pd.DataFrame({symbol: [1.0]}, index=stamp),
        units=pd.DataFrame({symbol: [1.0]}, index=stamp),
        events=pd.DataFrame({"ts": pd.Series([], dtype=close.index.dtype), "symbol": pd.Series([], dtype=object),
                             "event": pd.Series([], dtype=object), "reason": pd.Series([], dtype=object)}),
        start=pd.Timestamp(first),
        spec=spec,
    )
