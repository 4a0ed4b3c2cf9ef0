"""Numeric kernels of the index builder: plain functions over NumPy arrays.

Nothing here knows about pandas, symbols or timestamps; :mod:`backtest.index`
plans the rebalances (which bars, which constituents, which target weights)
and wraps the results. Two functions do the work:

* :func:`index_level_nb` -- the bar loop of a chain-linked units index with
  exits at the last known price (numba ``@njit``), and
  :func:`_index_level_reference`, a slow, obvious pure-Python version of the
  same loop that the tests compare it with;
* :func:`cap_weights` -- the iterative pro-rata weight cap.

Bar loop
--------
With ``t0`` the start bar, ``I`` the level, ``P`` closes, ``H`` highs, ``q``
units and ``w^(k)`` the target weights of rebalance row ``k``:

* ``I[t0] = base_level``;
* for ``t > t0``, with ``q`` the units held over the bar ``(t-1, t]``,

  ``I[t] = sum_{i: P[t,i] known} q_i P[t,i] + sum_{i: P[t,i] unknown} q_i P[t-1,i]``

  -- a held constituent whose data ended is valued at its last known price
  (it left the index at that price), which keeps the level continuous and uses
  only prices up to ``t``. A bar at which that happens must be a rebalance bar;
* ``Hi[t]`` is the same sum with ``H[t,i]`` in place of ``P[t,i]`` (frozen
  constituents stay at ``q_i P[t-1,i]``); NaN when a high of a priced held
  constituent is unknown, and NaN at ``t0`` (no position was held during the
  start bar);
* at a rebalance bar ``r`` (after ``I[r]`` is known): ``q_i = w_i^(k) I[r] / P[r,i]``
  for ``w_i^(k) > 0`` and ``q_i = 0`` otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "STATUS_OK",
    "STATUS_UNPRICED_HOLDING",
    "STATUS_UNPRICED_TARGET",
    "STATUS_NO_START_REBALANCE",
    "index_level_nb",
    "cap_weights",
]

#: the kernel ran to the end
STATUS_OK = 0
#: a held constituent has no price at a bar that is not a rebalance bar
STATUS_UNPRICED_HOLDING = 1
#: a rebalance gives a positive weight to a constituent without a price at that bar
STATUS_UNPRICED_TARGET = 2
#: the start bar is not a rebalance bar
STATUS_NO_START_REBALANCE = 3


@njit(cache=True)
def index_level_nb(
    close: np.ndarray,
    high: np.ndarray,
    rebalance_row: np.ndarray,
    weights: np.ndarray,
    start: int,
    base_level: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the chain-linked units index over the bars (numba).

    Parameters
    ----------
    close : ndarray of float64, shape (T, N)
        Closes; NaN where a constituent has no price.
    high : ndarray of float64, shape (T, N)
        Bar highs; NaN where unknown (all NaN when no highs are available).
    rebalance_row : ndarray of int64, shape (T,)
        Row of ``weights`` applied at the bar's close, or -1 for no rebalance.
    weights : ndarray of float64, shape (R, N)
        Target weights per rebalance row (zero for constituents not held).
    start : int
        Start bar ``t0``; must be a rebalance bar.
    base_level : float
        ``I[t0]``.

    Returns
    -------
    level : ndarray, shape (T,)
        ``I[t]``; NaN before ``start``.
    level_high : ndarray, shape (T,)
        ``Hi[t]`` (see the module docstring); NaN before and at ``start``.
    units : ndarray, shape (R, N)
        Units ``q`` set at each rebalance row.
    status : ndarray of int64, shape (3,)
        ``(code, bar, column)``; ``code`` is one of the ``STATUS_*`` constants,
        ``bar`` and ``column`` locate the problem (the loop stops there).
    """
    n_bars, n_sym = close.shape
    level = np.full(n_bars, np.nan)
    level_high = np.full(n_bars, np.nan)
    units = np.zeros(weights.shape)
    status = np.zeros(3, dtype=np.int64)
    q = np.zeros(n_sym)
    if start < n_bars and rebalance_row[start] < 0:
        status[0] = STATUS_NO_START_REBALANCE
        status[1] = start
        return level, level_high, units, status
    for t in range(start, n_bars):
        if t == start:
            value = base_level
            value_high = np.nan
        else:
            value = 0.0
            value_high = 0.0
            high_known = True
            for i in range(n_sym):
                if q[i] == 0.0:
                    continue
                p = close[t, i]
                if math.isnan(p):
                    if rebalance_row[t] < 0:
                        status[0] = STATUS_UNPRICED_HOLDING
                        status[1] = t
                        status[2] = i
                        return level, level_high, units, status
                    frozen = q[i] * close[t - 1, i]
                    value += frozen
                    value_high += frozen
                else:
                    value += q[i] * p
                    h = high[t, i]
                    if math.isnan(h):
                        high_known = False
                    else:
                        value_high += q[i] * h
            if not high_known:
                value_high = np.nan
        level[t] = value
        level_high[t] = value_high
        k = rebalance_row[t]
        if k >= 0:
            for i in range(n_sym):
                w = weights[k, i]
                if w > 0.0:
                    p = close[t, i]
                    if math.isnan(p):
                        status[0] = STATUS_UNPRICED_TARGET
                        status[1] = t
                        status[2] = i
                        return level, level_high, units, status
                    q[i] = w * value / p
                else:
                    q[i] = 0.0
                units[k, i] = q[i]
    return level, level_high, units, status


def _index_level_reference(
    close: np.ndarray,
    high: np.ndarray,
    rebalance_row: np.ndarray,
    weights: np.ndarray,
    start: int,
    base_level: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow, obvious pure-Python version of :func:`index_level_nb` (for tests).

    Same inputs and formulas; holdings are a ``{column: units}`` dict and the
    last price of each holding is remembered explicitly. Raises ``ValueError``
    where the kernel reports a non-OK status.

    Returns
    -------
    level, level_high, units : ndarray
        As :func:`index_level_nb`.
    """
    n_bars, n_sym = len(close), len(close[0])
    level = [math.nan] * n_bars
    level_high = [math.nan] * n_bars
    units = [[0.0] * n_sym for _ in range(len(weights))]
    holdings: dict[int, float] = {}
    last_price: dict[int, float] = {}
    for t in range(start, n_bars):
        row = int(rebalance_row[t])
        if t == start:
            if row < 0:
                raise ValueError(f"start bar {t} is not a rebalance bar")
            value, value_high = float(base_level), math.nan
        else:
            parts: list[float] = []
            high_parts: list[float] = []
            for i, q in holdings.items():
                p = float(close[t][i])
                if math.isnan(p):
                    if row < 0:
                        raise ValueError(f"held column {i} has no price at bar {t}, which is no rebalance")
                    parts.append(q * last_price[i])
                    high_parts.append(q * last_price[i])
                else:
                    parts.append(q * p)
                    high_parts.append(q * float(high[t][i]))
            value = sum(parts)
            value_high = sum(high_parts)  # NaN as soon as one high is NaN
        level[t] = value
        level_high[t] = value_high
        for i in holdings:
            if not math.isnan(float(close[t][i])):
                last_price[i] = float(close[t][i])
        if row >= 0:
            holdings = {}
            for i in range(n_sym):
                w = float(weights[row][i])
                if w > 0.0:
                    p = float(close[t][i])
                    if math.isnan(p):
                        raise ValueError(f"positive weight on column {i} without a price at bar {t}")
                    holdings[i] = w * value / p
                    last_price[i] = p
                    units[row][i] = holdings[i]
    return np.array(level), np.array(level_high), np.array(units).reshape(len(weights), n_sym)


def cap_weights(weights: np.ndarray, max_weight: float) -> np.ndarray:
    """Cap weights at ``max_weight``, redistributing the excess pro rata, iteratively.

    With ``C`` the set of capped names (initially empty) and ``c = max_weight``,
    repeat until no weight exceeds ``c``:

    ``w_i = c`` for ``i in C``;  ``w_j = (1 - c |C|) * v_j / sum_{k not in C} v_k`` otherwise,

    where ``v`` are the uncapped input weights, then add every name with
    ``w_j > c`` to ``C``. Redistribution can push a second name over the cap,
    hence the loop (at most ``n`` rounds). Example: ``(0.5, 0.3, 0.2)`` capped
    at 0.4 gives ``(0.4, 0.3 + 0.1*0.3/0.5, 0.2 + 0.1*0.2/0.5) = (0.4, 0.36, 0.24)``.

    Parameters
    ----------
    weights : ndarray, shape (N,)
        Non-negative weights (normalised here to sum to 1); zeros stay zero.
    max_weight : float
        The cap ``c`` in (0, 1].

    Returns
    -------
    ndarray, shape (N,)
        Capped weights summing to 1 (up to rounding), none above ``c``.

    Raises
    ------
    ValueError
        If the weights are not finite and non-negative with a positive sum, or
        if the cap is infeasible: ``n * c < 1`` with ``n`` the number of
        positive weights.
    """
    v = np.asarray(weights, dtype=np.float64)
    if not (np.all(np.isfinite(v)) and np.all(v >= 0.0) and v.sum() > 0.0):
        raise ValueError("weights must be finite, non-negative and not all zero")
    positive = v > 0.0
    n = int(positive.sum())
    if n * max_weight < 1.0 - 1e-12:
        raise ValueError(f"a cap of {max_weight} cannot hold with {n} constituents (needs n * cap >= 1)")
    capped = np.zeros(v.shape, dtype=bool)
    out = v / v.sum()
    while True:
        free = positive & ~capped
        out[capped] = max_weight
        if not free.any():
            break
        out[free] = (1.0 - max_weight * capped.sum()) * v[free] / v[free].sum()
        over = free & (out > max_weight)
        if not over.any():
            break
        capped |= over
    return out
