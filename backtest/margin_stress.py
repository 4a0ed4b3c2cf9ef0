"""Margin stress: how much collateral keeps the hedge alive on paths history did not take.

``hedgebt stress CONFIG --paths N --horizon-days D --out DIR`` answers "how likely is a
margin call (or a liquidation) within D days, as a function of the starting collateral?"

Method
------
1. The replay of CONFIG is prepared as for ``hedgebt run``. Its per-bar joint moves are
   the rows ``x[s] = (S_1[s]/S_1[s-1], ..., S_n[s]/S_n[s-1], I[s]/I[s-1], H[s]/I[s])``,
   ``s = 1..T-1``: each coin's price ratio, the underlying's (index or symbol) level ratio
   and its intrabar high over its close (NaN when unknown).
2. N index sequences of length ``m = H - 1`` (``H`` = D days of bars + 1) are drawn with
   :class:`arch.bootstrap.StationaryBootstrap` (Politis & Romano 1994), seeded, on the
   ``T - 1`` rows (the first ``m`` entries of each resample). The mean block length is
   ``--block-bars`` or, by default, the largest Politis-White (2004; Patton, Politis &
   White 2009) stationary estimate of :func:`arch.bootstrap.optimal_block_length` over
   the coin-holding and underlying log returns and their squares (squares so that the
   blocks keep volatility clusters), at least 1 bar.
3. Each path replays the *calendar of the last H bars* of the history (contracts, roll
   schedule, funding times and rates, variation-margin times, holdings rule) with prices
   rebuilt from the drawn rows: ``S[0] = S_hist[T-H]``, ``S[j] = S[j-1] x ratio[s_j]``,
   likewise ``I``; contract prices keep the historical basis of that bar,
   ``F[j,k] = I[j] x F_hist[T-H+j,k] / I_hist[T-H+j]``. Hedge rules are re-estimated
   walk-forward on the historical returns up to the window start followed by the path's.
4. All rules x (one margin-free variant + each collateral level) are the variants of
   every path. The paths are stacked (``batch`` at a time: prices, holding and hedge
   ratios along a leading path axis; the calendar is shared) and every (path, variant
   group) of a batch runs in one parallel pass of :func:`backtest.kernels.simulate_paths_nb`
   -- in this process, or one Dask task per batch (``--scheduler processes`` or
   ``tcp://HOST:PORT``), with identical results (each path's summaries are bit for bit
   those of :func:`backtest.kernels.simulate_many_nb` on that path's market).

Outputs: ``P(margin call)`` and ``P(liquidation)`` per rule and collateral level; per
path the collateral that never breaches maintenance (``margin_need`` of the margin-free
replay, whose path does not depend on collateral), whose empirical 95 % / 99 %
quantiles are the collateral needed for 95 % / 99 % survival (no margin call within D
days); and, for comparison, the full historical replay's ``min_safe_collateral``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtest import kernels as K
from backtest.config import BOUNDS, Config, is_number, is_whole
from backtest.engine import (
    Prepared,
    coin_and_futures_returns,
    holding_arrays,
    min_safe_collaterals,
    prepare,
    result_record,
    variant_for,
)
from backtest.errors import ConfigError
from backtest.market import Market, Variant, pack_variants
from backtest.progress import Progress, report as report_progress

__all__ = ["StressSpec", "StressResult", "joint_moves", "block_length", "draw_indices", "path_market",
           "stack_markets", "simulate_paths", "run_stress", "write_stress_tables"]


#: Most bootstrap paths (``--paths``); with at most :data:`MAX_PATH_BARS` bars of paths in all.
MAX_PATHS: int = 1_000_000
#: Most bars of all paths together (``--paths`` x bars per path): their index array takes 8 bytes
#: a bar (800 MB at the bound) before the replay's own arrays.
MAX_PATH_BARS: int = 100_000_000
#: Largest starting collateral of ``--collateral-grid``: the bound of ``margin.collateral_usd``.
MAX_COLLATERAL_USD: float = BOUNDS["margin.collateral_usd"]


@dataclass(frozen=True)
class StressSpec:
    """What to stress.

    Attributes
    ----------
    paths : int
        Bootstrap paths N (>= 1).
    horizon_days : float
        Days per path D; the path has ``round(D x bars per day) + 1`` bars.
    seed : int
        Seed of the bootstrap generator.
    collateral_usd : tuple of float or None
        Starting collateral levels (USD, >= 0); ``None``: 21 levels from 0 to 1.2 x the
        largest of the 99.5 % path quantile and the historical figure, in round steps.
    block_bars : float or None
        Mean block length of the stationary bootstrap (bars); ``None``: data-driven.
    """

    paths: int
    horizon_days: float
    seed: int = 0
    collateral_usd: tuple[float, ...] | None = None
    block_bars: float | None = None

    def __post_init__(self) -> None:
        if not is_whole(self.paths):
            raise ConfigError("--paths", f"expected an integer from 1 to {MAX_PATHS:,}, got {self.paths!r}")
        if not is_whole(self.seed):
            raise ConfigError("--seed", f"expected an integer >= 0, got {self.seed!r}")
        for key, value in (("--horizon-days", self.horizon_days), ("--block-bars", self.block_bars)):
            if value is not None and not is_number(value):
                raise ConfigError(key, f"expected a number, got {value!r}")
        if self.collateral_usd is not None and not all(is_number(c) for c in self.collateral_usd):
            raise ConfigError("--collateral-grid", f"expected USD amounts, got {list(self.collateral_usd)!r}")
        if not 1 <= self.paths <= MAX_PATHS:
            raise ConfigError("--paths", f"expected an integer from 1 to {MAX_PATHS:,}, got {self.paths}")
        if not (math.isfinite(self.horizon_days) and self.horizon_days > 0):
            raise ConfigError("--horizon-days", f"expected a number of days > 0, got {self.horizon_days}")
        if self.seed < 0:
            raise ConfigError("--seed", f"expected an integer >= 0, got {self.seed}")
        if self.collateral_usd is not None:
            grid = list(self.collateral_usd)
            if not grid or any(not math.isfinite(c) or not 0 <= c <= MAX_COLLATERAL_USD for c in grid):
                raise ConfigError("--collateral-grid", f"expected USD amounts from 0 to {MAX_COLLATERAL_USD:g}, got {grid}")
            if len(set(grid)) != len(grid):
                raise ConfigError("--collateral-grid", f"expected distinct USD amounts, got {grid}")
        if self.block_bars is not None and not (math.isfinite(self.block_bars) and self.block_bars >= 1):
            raise ConfigError("--block-bars", f"expected a mean block length >= 1 bar, got {self.block_bars}")


@dataclass(frozen=True, eq=False)
class StressResult:
    """Outcome of a stress run (read-only).

    Attributes
    ----------
    table : DataFrame
        One row per rule and collateral level: ``rule``, ``collateral_usd``,
        ``p_margin_call``, ``p_liquidation``, ``mean_margin_calls``.
    needs : ndarray, shape (N, R)
        Per path and rule: collateral that never breaches maintenance (USD).
    indices : ndarray, shape (N, H - 1)
        Bootstrap rows drawn (0-based rows of :func:`joint_moves`, row r = bar r + 1).
    info : dict
        JSON-able facts: block length, window, horizon, historical figures, quantiles.
    """

    table: pd.DataFrame
    needs: np.ndarray
    indices: np.ndarray
    info: dict[str, Any]


def joint_moves(prepared: Prepared) -> np.ndarray:
    """Rows ``x[s-1]`` for bars ``s = 1..T-1``: coin price ratios, level ratio, high / close.

    Shape ``(T - 1, n_coins + 2)``.
    """
    px = prepared.coin_prices
    idx = prepared.market.idx
    hi = prepared.market.idx_hi
    return np.column_stack([px[1:] / px[:-1], idx[1:] / idx[:-1], hi[1:] / idx[1:]])


def block_length(prepared: Prepared) -> float:
    """Default mean block (bars): max Politis-White stationary estimate over the holding's and
    the underlying's log returns and their squares, at least 1.

    The estimate is a few thousand BLAS dot products of history-long vectors; BLAS runs on
    one thread for them (threaded, they took 1.7 s on 2 idle cores and 25 s on 2 busy ones,
    against 0.1 s on one thread, and their sums depended on the thread count).
    """
    from arch.bootstrap import optimal_block_length
    from threadpoolctl import threadpool_limits

    m = prepared.market
    coin = np.log1p(m.alt_pnl[1:] / m.alt_value[:-1])
    level = np.diff(np.log(m.idx))
    data = np.column_stack([coin, level, coin**2, level**2])
    with threadpool_limits(limits=1, user_api="blas"):
        est = optimal_block_length(data)["stationary"].to_numpy(dtype=float)
    return float(max(1.0, np.nanmax(est)))


def draw_indices(n_rows: int, length: int, paths: int, block: float, seed: int) -> np.ndarray:
    """``paths`` stationary-bootstrap index sequences of ``length`` rows out of ``n_rows``.

    Each is the first ``length`` entries of one resample of
    ``arch.bootstrap.StationaryBootstrap(block, arange(n_rows), seed=seed)``, in order.
    """
    from arch.bootstrap import StationaryBootstrap

    if length > n_rows:
        raise ConfigError("--horizon-days", f"the horizon needs {length + 1} bars but the history has {n_rows + 1}")
    bs = StationaryBootstrap(block, np.arange(n_rows), seed=seed)
    out = np.empty((paths, length), dtype=np.int64)
    for p, _ in enumerate(bs.bootstrap(paths)):
        out[p] = np.asarray(bs.index).ravel()[:length]
    return out


def _units(config: Config, prepared: Prepared, start: int, prices: np.ndarray) -> np.ndarray:
    """Coin units on the window bars for the rebuilt prices (``kind = notional`` resizes)."""
    hist = prepared.coin_units[start:]
    if config.position.kind != "notional":
        return hist.copy()
    every = config.rebalance.every_bars
    t = np.arange(start, start + len(prices))
    reset = t - t % every
    notional = np.asarray(config.position.notional_usd, dtype=float)[None, :]
    inside = reset >= start
    out = hist.copy()
    out[inside] = notional / prices[reset[inside] - start]
    return out


def path_market(config: Config, prepared: Prepared, rows: np.ndarray, moves: np.ndarray,
                hr: np.ndarray | None = None, *, hist_returns: tuple[np.ndarray, np.ndarray] | None = None) -> Market:
    """The market of one path: the last ``len(rows) + 1`` bars' calendar with rebuilt prices.

    Hedge ratios are re-estimated by every rule on the historical returns up to the window
    start followed by the path's returns (unless ``hr``, shape (H, R), is given);
    ``hist_returns`` is ``coin_and_futures_returns(prepared.market)`` if already computed.
    """
    m = prepared.market
    T = m.n_bars
    H = len(rows) + 1
    start = T - H
    n = len(prepared.coins)
    x = moves[rows]
    growth = np.vstack([np.ones((1, n + 1)), np.cumprod(x[:, : n + 1], axis=0)])
    prices = prepared.coin_prices[start] * growth[:, :n]
    idx = m.idx[start] * growth[:, n]
    hi_ratio = np.concatenate([[np.nan], x[:, n + 1]])
    coin = holding_arrays(_units(config, prepared, start, prices), prices)
    basis = m.px[start:] / m.idx[start:, None]
    base = Market(
        px=basis * idx[:, None], idx=idx, idx_hi=idx * hi_ratio, idx_lo=np.full(H, np.nan),
        c0=m.c0[start:], c1=m.c1[start:], w1=m.w1[start:], exp_bar=m.exp_bar - start,
        fund_rate=m.fund_rate[start:], volume_usd=m.volume_usd[start:], vm_bar=m.vm_bar[start:],
        alt_value=coin.alt_value, alt_pnl=coin.alt_pnl, alt_flow=coin.alt_flow, alt_changed=coin.alt_changed,
        hr=np.zeros((H, 1)), contract_size=m.contract_size,
    )
    if hr is not None:
        return replace(base, hr=hr)
    coin_p, fut_p = coin_and_futures_returns(base)
    coin_h, fut_h = coin_and_futures_returns(m) if hist_returns is None else hist_returns
    coin = np.concatenate([coin_h[: start + 1], coin_p[1:]])
    fut = np.concatenate([fut_h[: start + 1], fut_p[1:]])
    hr = np.column_stack([np.asarray(rule.hedge_ratio(coin, fut), dtype=float)[start:] for rule in prepared.rules])
    return replace(base, hr=hr)


def _variants(config: Config, n_rules: int, grid: tuple[float, ...]) -> list[Variant]:
    """Per rule: the margin-free variant, then one margin-on variant per collateral level."""
    out = []
    for col in range(n_rules):
        v = variant_for(config, col, margin_enabled=True)
        out.append(replace(v, margin_enabled=False, collateral_usd=0.0, reserve_usd=0.0))
        out.extend(replace(v, collateral_usd=float(c)) for c in grid)
    return out


def _nice_grid(top: float, levels: int = 21) -> tuple[float, ...]:
    """``levels`` multiples of a round step (1, 2, 2.5 or 5 x 10^k) from 0 to at least ``top``."""
    if not (math.isfinite(top) and top > 0):
        top = 1.0
    raw = top / (levels - 1)
    k = 10.0 ** math.floor(math.log10(raw))
    step = next(s * k for s in (1.0, 2.0, 2.5, 5.0, 10.0) if s * k >= raw)
    return tuple(float(i * step) for i in range(levels))


def _quantile(x: np.ndarray, q: float) -> float:
    """Smallest value c with share(x <= c) >= q (empirical, attained)."""
    return float(np.quantile(x, q, method="inverted_cdf"))


def stack_markets(markets: list[Market]) -> tuple:
    """Positional arguments of :func:`backtest.kernels.simulate_paths_nb` (before ``fps, ips``)
    for path markets built by :func:`path_market` on one calendar window.

    The per-path arrays (``px``, ``idx``, ``idx_hi``, the holding, ``hr``) are stacked along a
    leading path axis; the calendar (``idx_lo``, roll schedule, settlements, funding, volume,
    variation-margin bars, contract size) is the first market's, the same for every path.
    Memory: ``P x H x (K + R + 6)`` floats.
    """
    first = markets[0].kernel_args()
    f = lambda name, dtype=np.float64: np.ascontiguousarray(  # noqa: E731
        np.stack([getattr(mk, name) for mk in markets]), dtype=dtype)
    return (
        f("px"), f("idx"), f("idx_hi"), first[3], first[4], first[5], first[6], first[7], first[8], first[9],
        first[10], f("alt_value"), f("alt_pnl"), f("alt_flow"), f("alt_changed", np.bool_), f("hr"), first[16],
    )


def _kernel_batch(args: tuple, fps: np.ndarray, ips: np.ndarray) -> np.ndarray:
    """One pass of :func:`backtest.kernels.simulate_paths_nb` over a batch of stacked paths."""
    return K.simulate_paths_nb(*args, fps, ips)


def _run_batches(batches: list[tuple], fps: np.ndarray, ips: np.ndarray, scheduler: str) -> list[np.ndarray]:
    """Kernel summaries (P, V, N_SUM) of every batch of stacked paths, here or on Dask (same results)."""
    if scheduler == "none":
        return [_kernel_batch(b, fps, ips) for b in batches]
    import dask

    if scheduler == "processes":
        return list(dask.compute(*[dask.delayed(_kernel_batch)(b, fps, ips) for b in batches], scheduler="processes"))
    if scheduler.startswith(("tcp://", "tls://")):
        from distributed import Client

        from backtest.errors import HedgeBTError

        try:
            client = Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise HedgeBTError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            return list(client.gather([client.submit(_kernel_batch, b, fps, ips, pure=False) for b in batches]))
        finally:
            client.close()
    raise ConfigError("--scheduler", f"expected 'none', 'processes' or tcp://HOST:PORT, got {scheduler!r}")


def simulate_paths(config: Config, prepared: Prepared, indices: np.ndarray, grid: tuple[float, ...],
                   moves: np.ndarray | None = None, *, hrs: np.ndarray | None = None, scheduler: str = "none",
                   batch: int = 64, progress: Progress | None = None,
                   progress_step: str = "paths") -> tuple[np.ndarray, np.ndarray]:
    """Replay every path of ``indices`` (shape (N, H - 1)); summaries and hedge ratios.

    Path markets are built here, ``batch`` at a time (hedge rules re-estimated unless
    ``hrs`` is given), and stacked (:func:`stack_markets`); every path and variant of a
    batch runs in one parallel pass of :func:`~backtest.kernels.simulate_paths_nb`, in this
    process (``scheduler="none"``) or as one Dask task per batch (``"processes"`` or
    ``tcp://HOST:PORT``, four batches in flight). Results do not depend on the scheduler
    or the batch size. ``progress`` (optional) hears ``(progress_step, paths done, N)``
    once per batch.

    Returns
    -------
    summaries : ndarray, shape (N, R, 1 + len(grid), N_SUM)
        Per path and rule: the margin-free replay, then one replay per collateral level.
    hr : ndarray, shape (N, H, R)
        The hedge ratios of every path (to replay it again without re-estimating).
    """
    moves = joint_moves(prepared) if moves is None else moves
    fps, ips = pack_variants(_variants(config, len(prepared.rules), grid))
    N, m = indices.shape
    R = len(prepared.rules)
    out = np.empty((N, R, 1 + len(grid), K.N_SUM))
    hr_out = np.empty((N, m + 1, R)) if hrs is None else hrs
    step = batch * (4 if scheduler != "none" else 1)  # paths held in memory at once
    hist = coin_and_futures_returns(prepared.market) if hrs is None else None  # the same for every path
    report_progress(progress, progress_step, 0, N)
    for lo in range(0, N, step):
        batches = []
        for b in range(lo, min(lo + step, N), batch):
            markets = [path_market(config, prepared, indices[p], moves, None if hrs is None else hrs[p],
                                   hist_returns=hist) for p in range(b, min(b + batch, N))]
            if hrs is None:
                hr_out[b : b + len(markets)] = np.stack([mk.hr for mk in markets])
            batches.append(stack_markets(markets))
            del markets
        hi = lo
        for summ in _run_batches(batches, fps, ips, scheduler):
            out[hi : hi + len(summ)] = summ.reshape(len(summ), R, 1 + len(grid), K.N_SUM)
            hi += len(summ)
        report_progress(progress, progress_step, hi, N)
    return out, hr_out


def run_stress(config: Config, spec: StressSpec, *, prepared: Prepared | None = None,
               scheduler: str = "none", progress: Progress | None = None) -> StressResult:
    """Bootstrap ``spec.paths`` paths of ``spec.horizon_days`` and replay the hedge on each
    for every collateral level (see the module docstring for the method)."""
    from backtest.multi_run import refuse_multi

    refuse_multi(config, "stress")
    prepared = prepare(config) if prepared is None else prepared
    T = prepared.market.n_bars
    H = int(round(spec.horizon_days * prepared.bars_per_day)) + 1
    if H < 2:
        raise ConfigError("--horizon-days", f"expected at least one bar ({1 / prepared.bars_per_day:.4g} days), "
                                            f"got {spec.horizon_days:g}")
    if spec.paths * H > MAX_PATH_BARS:
        raise ConfigError("--paths", f"{spec.paths:,} paths of {H:,} bars are {spec.paths * H:,} bars; at most "
                                     f"{MAX_PATH_BARS:,} (fewer paths or a shorter --horizon-days)")
    moves = joint_moves(prepared)
    block = float(spec.block_bars) if spec.block_bars is not None else block_length(prepared)
    indices = draw_indices(T - 1, H - 1, spec.paths, block, spec.seed)
    R = len(prepared.rules)
    labels = prepared.rule_labels
    # every rule's historical figure in one bisection (all rules side by side in each kernel call), as run does
    historical = [float(c) for c in min_safe_collaterals(prepared.market, [variant_for(config, c) for c in range(R)],
                                                         progress=progress)]
    window_rows = np.arange(T - H, T - 1)[None, :]
    grid = spec.collateral_usd
    first, hrs = simulate_paths(config, prepared, indices, grid or (), moves, scheduler=scheduler, progress=progress,
                                progress_step="bootstrap paths")
    needs = first[:, :, 0, K.S_MARGIN_NEED]
    if grid is None:
        top = 1.2 * max(float(np.max([_quantile(needs[:, r], 0.995) for r in range(R)])), max(historical))
        grid = _nice_grid(top)
        summ, _ = simulate_paths(config, prepared, indices, grid, moves, hrs=hrs, scheduler=scheduler,
                                 progress=progress, progress_step="paths at each collateral level")
    else:
        summ = first
    window, _ = simulate_paths(config, prepared, window_rows, grid, moves)
    rows = []
    for r, label in enumerate(labels):
        for g, c in enumerate(grid):
            s = summ[:, r, 1 + g]
            rows.append({
                "rule": label,
                "collateral_usd": float(c),
                "p_margin_call": float(np.mean(s[:, K.S_MARGIN_CALLS] > 0)),
                "p_liquidation": float(np.mean(s[:, K.S_LIQUIDATIONS] > 0)),
                "mean_margin_calls": float(np.mean(s[:, K.S_MARGIN_CALLS])),
            })
    table = pd.DataFrame(rows)
    ts = prepared.ts
    m = config.margin
    info: dict[str, Any] = {
        "paths": spec.paths,
        "horizon_days": spec.horizon_days,
        "horizon_bars": H,
        "bar": config.scenario.bar,
        "seed": spec.seed,
        "block_bars": block,
        "block_source": "--block-bars" if spec.block_bars is not None else
        "max Politis-White stationary estimate (arch.bootstrap.optimal_block_length) over the holding's and the "
        "underlying's log returns and their squares",
        "history": {"start": ts[0].isoformat(), "end": ts[-1].isoformat(), "bars": int(T)},
        "calendar_window": {"start": ts[T - H].isoformat(), "end": ts[-1].isoformat()},
        "underlying": config.futures.underlying,
        "margin": {"policy": m.policy, "initial_rate": m.initial_rate, "maintenance_rate": m.maintenance_rate,
                   "reserve_usd": m.reserve_usd, "variation": m.variation, "config_collateral_usd": m.collateral_usd},
        "collateral_grid_usd": list(grid),
        "rules": {},
        **result_record(config, prepared.inputs),
    }
    for r, label in enumerate(labels):
        t = table[table["rule"] == label]
        safe_liq = t.loc[t["p_liquidation"] <= 0.01, "collateral_usd"]
        info["rules"][label] = {
            "historical_min_safe_collateral_usd": historical[r],
            "historical_window_need_usd": float(window[0, r, 0, K.S_MARGIN_NEED]),
            "collateral_95_usd": _quantile(needs[:, r], 0.95),
            "collateral_99_usd": _quantile(needs[:, r], 0.99),
            "median_need_usd": _quantile(needs[:, r], 0.5),
            "grid_collateral_liquidation_le_1pct_usd": None if safe_liq.empty else float(safe_liq.min()),
        }
    return StressResult(table, needs, indices, info)


def write_stress_tables(result: StressResult, folder: Path) -> None:
    """``stress.csv`` (fixed float format), ``stress_needs.csv`` and ``stress.json``."""
    from backtest.atomic import write_text

    write_text(folder / "stress.csv", result.table.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    labels = list(result.info["rules"])
    needs = pd.DataFrame(result.needs, columns=labels)
    needs.insert(0, "path", np.arange(len(needs)))
    write_text(folder / "stress_needs.csv", needs.to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    write_text(folder / "stress.json", json.dumps(result.info, indent=2, allow_nan=False) + "\n")
