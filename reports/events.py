"""Named AI-market swings and what a hedge did inside each of them.

The bundled library lives in ``backtest/events.toml`` (read by :mod:`backtest.windows`, whose
:class:`Event`, :func:`load_events` and :data:`EVENT_KEYS` this module re-exports) (crash of 2022, FTX collapse,
ChatGPT rally 2023, Nvidia-earnings rally 2024, DeepSeek sell-off 2025); users add
their own windows with ``[events.<name>]`` tables in the scenario configuration::

    [events.my_window]
    title = "My window"
    start = 2024-08-01T00:00:00Z
    end = 2024-08-15T00:00:00Z
    description = "why it matters"   # optional

Window convention: a bar belongs to an event when its open time ``ts`` satisfies
``start <= ts < end``. The bar's return runs from the previous bar's close to its own
close, so the window's returns cover the prices from the close before the first bar in
the window to the close of the last one.

Basis share
-----------
:func:`event_table` splits the hedged P&L of each bar :math:`t` into four parts, with
:math:`N = \\text{alt\\_value}[t-1]` the coin notional, :math:`h = \\text{hedge\\_ratio\\_held}[t-1]`
(positive for a short hedge), :math:`r_c` = ``ret_unhedged[t]`` and
:math:`r_i = \\text{index\\_level}[t] / \\text{index\\_level}[t-1] - 1`:

* ``pnl_divergence`` :math:`= h (r_c - r_i) N` -- the coin moving differently from the
  index the hedge is written on (basis risk proper);
* ``pnl_unhedged_fraction`` :math:`= (1 - h) r_c N` -- the part of the coin left unhedged
  by the hedge ratio;
* ``pnl_costs`` = fees + slippage + roll_cost + funding + liquidation_cost;
* ``pnl_hedge_residual`` = ``pnl_futures`` :math:`+ h r_i N` -- futures P&L beyond an ideal
  short of :math:`hN` in the index itself (futures-vs-index basis moves, contract rounding,
  trades inside the bar).

The four add up to the hedged P&L exactly (``pnl_altcoin = r_c N`` by the ledger's
definition of ``ret_unhedged``). Summed over the window,

    ``basis_share = pnl_divergence / pnl_hedged``   when ``pnl_hedged < 0``, else NaN:

the share of the window's hedged loss caused by the coin/index divergence rather than
by the size of the hedge or by costs. It is a signed share: above 1 when divergence
lost more than the total (other parts gained), negative when divergence gained.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from backtest.errors import ConfigError
from backtest.schema import PNL_COLUMN
from backtest.windows import EVENT_KEYS, Event, format_ts, load_events
from reports import stats

__all__ = [
    "Event",
    "EVENT_COLUMNS",
    "EVENT_KEYS",
    "load_events",
    "select_events",
    "event_table",
    "split_rules",
    "events_in_period",
]

#: Columns of :func:`event_table`, in order.
EVENT_COLUMNS: Final[tuple[str, ...]] = (
    "event",
    "title",
    "start",
    "end",
    "rule",
    "bars",
    "days",
    "coin_return",
    "index_return",
    "pnl_unhedged",
    "pnl_hedged",
    "hedge_effectiveness",
    "max_drawdown_unhedged",
    "max_drawdown_hedged",
    "margin_calls",
    "liquidations",
    "pnl_divergence",
    "pnl_unhedged_fraction",
    "pnl_costs",
    "pnl_hedge_residual",
    "basis_share",
    "note",
)

_COST_COLUMNS: Final[tuple[str, ...]] = tuple(
    PNL_COLUMN[c] for c in ("fees", "slippage", "roll", "funding", "liquidation")
)


def select_events(events: Sequence[Event], names: Sequence[str], *, key: str = "events") -> tuple[Event, ...]:
    """The events called ``names``, in the order of ``names``.

    Parameters
    ----------
    events : sequence of Event
        Known events (e.g. from :func:`load_events`).
    names : sequence of str
        Names to pick; duplicates are kept once.
    key : str, default "events"
        Configuration key reported in the error.

    Raises
    ------
    ConfigError
        For an unknown name; the message lists the known names.
    """
    by_name = {e.name: e for e in events}
    out: list[Event] = []
    for name in names:
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "(none)"
            raise ConfigError(key, f"unknown event '{name}'; known events: {known}")
        if by_name[name] not in out:
            out.append(by_name[name])
    return tuple(out)


def split_rules(ledger: pd.DataFrame, rules: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    """One frame per rule, each sorted by ``ts`` with a fresh 0..n-1 index.

    Parameters
    ----------
    ledger : pandas.DataFrame
        Ledger with the schema's columns (any row order).
    rules : sequence of str, optional
        Rule order; rules of the ledger not listed follow in order of first appearance.

    Returns
    -------
    dict of str to pandas.DataFrame
    """
    present = list(pd.unique(ledger["rule"]))
    order = [r for r in (rules or ()) if r in present] + [r for r in present if r not in (rules or ())]
    groups = dict(list(ledger.groupby("rule", sort=False)))
    return {
        r: groups[r].sort_values("ts", kind="stable").reset_index(drop=True) for r in order
    }


def _data_period(ledger: pd.DataFrame, bars_per_day: float) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[first bar open, last bar open + one bar)`` of the ledger."""
    bar = pd.Timedelta(days=1) / bars_per_day
    return ledger["ts"].min(), ledger["ts"].max() + bar


def events_in_period(
    events: Sequence[Event], ledger: pd.DataFrame, *, bars_per_day: float
) -> tuple[tuple[Event, ...], tuple[Event, ...]]:
    """Split events into those overlapping the ledger's period and those outside it.

    Returns
    -------
    inside, outside : tuple of Event
    """
    lo, hi = _data_period(ledger, bars_per_day)
    inside = tuple(e for e in events if e.start < hi and e.end > lo)
    outside = tuple(e for e in events if not (e.start < hi and e.end > lo))
    return inside, outside


def _window_row(g: pd.DataFrame, ev: Event, rule: str, bars_per_day: float, partial: str) -> dict[str, Any]:
    """Figures of one rule's ledger ``g`` (sorted by ts) inside one event window."""
    ts = g["ts"]
    mask = ((ts >= ev.start) & (ts < ev.end)).to_numpy()
    ret_u = g["ret_unhedged"].to_numpy(dtype=float)
    ret_h = g["ret_hedged"].to_numpy(dtype=float)
    index = g["index_level"].to_numpy(dtype=float)
    ret_i = np.full(index.shape, np.nan)
    ret_i[1:] = index[1:] / index[:-1] - 1.0
    notional_prev = np.full(index.shape, np.nan)
    notional_prev[1:] = g["alt_value"].to_numpy(dtype=float)[:-1]
    h_prev = np.full(index.shape, np.nan)
    h_prev[1:] = g["hedge_ratio_held"].to_numpy(dtype=float)[:-1]

    pnl_alt = g[PNL_COLUMN["altcoin"]].to_numpy(dtype=float)[mask]
    pnl_fut = g[PNL_COLUMN["futures"]].to_numpy(dtype=float)[mask]
    costs = g[list(_COST_COLUMNS)].to_numpy(dtype=float)[mask].sum(axis=1)
    pnl_hedged_bar = pnl_alt + pnl_fut + costs
    rc, ri, n_prev, hp = ret_u[mask], ret_i[mask], notional_prev[mask], h_prev[mask]
    divergence = np.where(np.isfinite(rc), hp * (rc - np.nan_to_num(ri)) * n_prev, 0.0)
    divergence = np.nan_to_num(divergence)
    unhedged_fraction = pnl_alt - np.nan_to_num(hp * rc * n_prev)
    residual = pnl_hedged_bar - divergence - unhedged_fraction - costs

    pnl_hedged = float(pnl_hedged_bar.sum())
    pnl_div = float(divergence.sum())
    wu, wh = ret_u[mask], ret_h[mask]
    n_ret = int((np.isfinite(wu) & np.isfinite(wh)).sum())
    notes = [n for n in (partial, stats.too_short(n_ret)) if n]
    bars = int(mask.sum())
    return {
        "event": ev.name,
        "title": ev.title,
        "start": ev.start,
        "end": ev.end,
        "rule": rule,
        "bars": bars,
        "days": bars / bars_per_day,
        "coin_return": float(np.prod(1.0 + np.nan_to_num(wu)) - 1.0),
        "index_return": float(np.prod(1.0 + np.nan_to_num(ri)) - 1.0),
        "pnl_unhedged": float(pnl_alt.sum()),
        "pnl_hedged": pnl_hedged,
        "hedge_effectiveness": stats.hedge_effectiveness(wh, wu) if n_ret >= 2 else math.nan,
        "max_drawdown_unhedged": stats.max_drawdown(wu),
        "max_drawdown_hedged": stats.max_drawdown(wh),
        "margin_calls": int(g["margin_call"].to_numpy(dtype=bool)[mask].sum()),
        "liquidations": int(g["liquidated"].to_numpy(dtype=bool)[mask].sum()),
        "pnl_divergence": pnl_div,
        "pnl_unhedged_fraction": float(unhedged_fraction.sum()),
        "pnl_costs": float(costs.sum()),
        "pnl_hedge_residual": float(residual.sum()),
        "basis_share": pnl_div / pnl_hedged if pnl_hedged < 0 else math.nan,
        "note": " ".join(notes),
    }


def event_table(
    ledger: pd.DataFrame,
    events: Sequence[Event],
    *,
    bars_per_day: float,
    rules: Sequence[str] | None = None,
    several_underlyings: Collection[str] = (),
) -> pd.DataFrame:
    """What each rule's hedge did inside each event window.

    Columns (:data:`EVENT_COLUMNS`), per event x rule, over the bars with
    ``start <= ts < end``:

    * ``bars``, ``days`` (= bars / bars per day);
    * ``coin_return`` = prod(1 + ret_unhedged) - 1 (holding fixed: the return of the coin
      position, independent of trades); ``index_return`` = prod of the bar-on-bar index
      level ratios - 1 over the same bars;
    * ``pnl_unhedged`` = sum of ``pnl_altcoin``; ``pnl_hedged`` = sum of all P&L columns
      (= change of ``equity_hedged``), USD;
    * ``hedge_effectiveness`` = 1 - Var(ret_hedged) / Var(ret_unhedged) in the window;
    * ``max_drawdown_unhedged`` / ``_hedged`` of prod(1 + ret) restarted at the window start;
    * ``margin_calls``, ``liquidations``: counts of flagged bars;
    * ``pnl_divergence``, ``pnl_unhedged_fraction``, ``pnl_costs``, ``pnl_hedge_residual``
      and ``basis_share``: the decomposition of the module docstring;
    * ``note``: plain words when the window is only partly covered by data or holds
      fewer than 30 bars of returns (figures are then shown but say little).

    Parameters
    ----------
    ledger : pandas.DataFrame
        Ledger with the schema's columns (any row order).
    events : sequence of Event
        Windows; each must overlap the ledger's period.
    bars_per_day : float
        Bars per day (24 hourly, 1 daily); fixes the length of the last bar.
    rules : sequence of str, optional
        Rule order of the rows (default: order of first appearance in the ledger).
    several_underlyings : collection of str, optional
        Rules that short futures on more than one underlying (``multi_min_variance``): their
        ``hedge_ratio_held`` is a sum over legs on different underlyings, not a hedge on
        ``index_level``, so their basis decomposition (``pnl_divergence`` .. ``basis_share``)
        is NaN; every other figure is computed as for any rule.

    Returns
    -------
    pandas.DataFrame
        Rows ordered by event (as given), then rule.

    Raises
    ------
    ConfigError
        ``events.<name>``: the event lies outside the data period.
    """
    if bars_per_day <= 0:
        raise ValueError(f"bars_per_day must be positive, got {bars_per_day}")
    lo, hi = _data_period(ledger, bars_per_day)
    frames = split_rules(ledger, rules)
    rows: list[dict[str, Any]] = []
    for ev in events:
        if not (ev.start < hi and ev.end > lo):
            raise ConfigError(
                f"events.{ev.name}",
                f"event '{ev.name}' ({ev.span()}) is outside the data period ({format_ts(lo)}..{format_ts(hi)})",
            )
        partial = ""
        if ev.start < lo or ev.end > hi:
            partial = (
                f"The data cover only part of this window ({format_ts(max(ev.start, lo))}.."
                f"{format_ts(min(ev.end, hi))} of {ev.span()})."
            )
        for rule, g in frames.items():
            row = _window_row(g, ev, rule, bars_per_day, partial)
            if rule in several_underlyings:
                row.update(dict.fromkeys(_BASIS_SPLIT, math.nan))
            rows.append(row)
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


#: the columns of the basis decomposition (module docstring), undefined for a rule on several underlyings
_BASIS_SPLIT: Final[tuple[str, ...]] = ("pnl_divergence", "pnl_unhedged_fraction", "pnl_hedge_residual", "basis_share")
