"""Named market windows: the :class:`Event` type, the bundled library and user windows.

The bundled library is ``backtest/events.toml`` (crash of 2022, FTX collapse, ChatGPT
rally 2023, Nvidia-earnings rally 2024, DeepSeek sell-off 2025); users add their own
windows with ``[events.<name>]`` tables in the scenario configuration (``Config.events``).

Window convention: a bar belongs to an event when its open time ``ts`` satisfies
``start <= ts < end``.

This module holds the window definitions only (no ledger, no figures), so the engine
(:mod:`backtest.instrument_choice`) and the reports (:mod:`reports.events`, which
re-exports these names) read the same windows.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import pandas as pd

from backtest.dates import parse_utc
from backtest.errors import ConfigError

__all__ = ["Event", "EVENT_KEYS", "bundled_events_file", "load_events", "format_ts"]

#: Keys an ``[events.<name>]`` table may hold.
EVENT_KEYS: Final[tuple[str, ...]] = ("title", "start", "end", "description")

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_BUNDLED: Final[str] = "events.toml"


@dataclass(frozen=True)
class Event:
    """A named market window.

    Parameters
    ----------
    name : str
        Identifier used to select the event (e.g. ``"deepseek_2025"``).
    title : str
        Short human label.
    start, end : pandas.Timestamp
        Window bounds, UTC; bars with ``start <= ts < end`` belong to it.
    description : str
        Why the window matters, with the source fact.
    """

    name: str
    title: str
    start: pd.Timestamp
    end: pd.Timestamp
    description: str = ""

    def span(self) -> str:
        """The window as ``'YYYY-MM-DD HH:MM..YYYY-MM-DD HH:MM'`` (UTC)."""
        return f"{format_ts(self.start)}..{format_ts(self.end)}"


def format_ts(ts: pd.Timestamp) -> str:
    """``'YYYY-MM-DD'`` at UTC midnight, else ``'YYYY-MM-DD HH:MM'``."""
    if ts.hour == 0 and ts.minute == 0 and ts.second == 0:
        return ts.strftime("%Y-%m-%d")
    return ts.strftime("%Y-%m-%d %H:%M")


def _make_event(name: str, table: object, *, prefix: str, source: str | None) -> Event:
    """Validate one ``[<prefix>.<name>]`` table into an :class:`Event`."""
    where = f"{prefix}{name}"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(where, "event names use letters, digits, '_', '-' and '.' only", source=source)
    if not isinstance(table, Mapping):
        raise ConfigError(
            where, f"expected a table with keys {', '.join(EVENT_KEYS)}, got {type(table).__name__}", source=source
        )
    for key in table:
        if key not in EVENT_KEYS:
            raise ConfigError(
                f"{where}.{key}", f"unknown key; an event takes {', '.join(EVENT_KEYS)}", source=source
            )
    for key in ("start", "end"):
        if key not in table:
            raise ConfigError(f"{where}.{key}", "missing; every event needs a start and an end (UTC)", source=source)
    start = parse_utc(table["start"], f"{where}.start", source=source)
    end = parse_utc(table["end"], f"{where}.end", source=source)
    if not end > start:
        raise ConfigError(
            f"{where}.end", f"end {end.isoformat()} must be after start {start.isoformat()}", source=source
        )
    title = table.get("title", name)
    description = table.get("description", "")
    for key, val in (("title", title), ("description", description)):
        if not isinstance(val, str):
            raise ConfigError(f"{where}.{key}", f"expected a string, got {type(val).__name__}", source=source)
    return Event(name=name, title=title.strip() or name, start=start, end=end, description=description.strip())


def bundled_events_file() -> Path:
    """The bundled event library (``backtest/events.toml``, installed with the package)."""
    return Path(str(resources.files("backtest").joinpath(_BUNDLED)))


def load_events(extra: Mapping[str, Any] | None = None) -> tuple[Event, ...]:
    """The bundled events, plus user events.

    Parameters
    ----------
    extra : mapping, optional
        The configuration's ``events`` table: ``{name: {"start": ..., "end": ...,
        "title": ..., "description": ...}}``. ``start`` and ``end`` are required and must be
        UTC (TOML offset date-times, ISO strings with ``Z``/an offset, converted to UTC, or
        bare dates meaning UTC midnight); ``title`` defaults to the name. A user event with
        the name of a bundled one replaces it in place; new ones follow the bundled ones
        in the order given.

    Returns
    -------
    tuple of Event
        Bundled events in file order, then user events.

    Raises
    ------
    ConfigError
        Naming ``events.<name>.<key>`` for an unknown or missing key, a time without
        time zone, or ``end <= start``.
    """
    path = bundled_events_file()
    with path.open("rb") as fh:
        bundled = tomllib.load(fh)
    events: dict[str, Event] = {
        name: _make_event(name, table, prefix="", source=str(path)) for name, table in bundled.items()
    }
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise ConfigError("events", f"expected a table of [events.<name>] tables, got {type(extra).__name__}")
        for name, table in extra.items():
            events[name] = _make_event(name, table, prefix="events.", source=None)
    return tuple(events.values())
