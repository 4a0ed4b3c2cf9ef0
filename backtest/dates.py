"""The one reader of dates in configurations and event windows: :func:`parse_utc`.

A leaf module (pandas only), so that :mod:`backtest.config` and :mod:`backtest.windows`
read dates the same way without importing each other.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import pandas as pd

from backtest.errors import ConfigError

__all__ = ["DATE_RANGE", "parse_utc"]

#: Accepted range of dates (``scenario.start`` / ``scenario.end``, event windows).
DATE_RANGE = ("2009-01-01", "2100-01-01")


#: ISO 8601 calendar date, optionally with a time and a zone (``Z`` or ``±HH:MM``).
_ISO_8601 = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_ISO_EXAMPLE = "'2024-08-01' or '2024-08-01T08:00:00Z'"


def parse_utc(value: Any, key: str, *, source: str | None = None) -> pd.Timestamp:
    """The one reader of dates in configs: an ISO 8601 string or a TOML date / date-time, as UTC.

    A calendar date is that UTC day's midnight; a date-time must carry its zone (``Z`` or
    ``±HH:MM``) and is converted to UTC. Anything else -- a date-time without a zone, a
    day-first or month-first form such as ``"01/08/2024"``, an empty string, a number --
    raises :class:`ConfigError` with an example of the right form.
    """
    if isinstance(value, _dt.datetime):
        ts = pd.Timestamp(value)
    elif isinstance(value, _dt.date):
        ts = pd.Timestamp(value.year, value.month, value.day)
    elif isinstance(value, str) and _ISO_8601.fullmatch(value.strip()):
        try:
            ts = pd.Timestamp(value.strip())
        except (ValueError, OverflowError):
            raise ConfigError(key, f"not a valid date: {value!r}; write {_ISO_EXAMPLE}", source=source) from None
    else:
        raise ConfigError(key, f"expected an ISO 8601 date such as {_ISO_EXAMPLE}, got {value!r}", source=source)
    lo, hi = DATE_RANGE
    if not pd.Timestamp(lo) <= (ts if ts.tzinfo is None else ts.tz_convert(None)) < pd.Timestamp(hi):
        raise ConfigError(key, f"expected a date between {lo} and {hi}, got {value!r}", source=source)
    if ts.tzinfo is None:
        if isinstance(value, _dt.datetime) or (isinstance(value, str) and len(value.strip()) > 10):
            raise ConfigError(key, f"date-time {value!s} has no time zone; write it in UTC, e.g. "
                                   f"'{ts.strftime('%Y-%m-%dT%H:%M:%S')}Z'", source=source)
        return ts.tz_localize("UTC")
    return ts.tz_convert("UTC")
