"""Random and hand-built markets for kernel tests (seeded; no files)."""

from __future__ import annotations

import numpy as np

from backtest.market import Market


def random_market(
    rng: np.random.Generator,
    n_bars: int = 300,
    *,
    n_contracts: int = 3,
    n_rules: int = 2,
    vol: float = 0.02,
    perpetual: bool = False,
    grace: int = 1,
    holding_changes: bool = True,
    with_high: bool = True,
    contract_size: float = 10.0,
) -> Market:
    """A random market with dated contracts (or a perpetual), rolls and a changing holding."""
    T = n_bars
    idx = 1000.0 * np.exp(np.cumsum(rng.normal(0, vol, T)))
    coin = 0.5 * np.exp(np.cumsum(0.8 * np.log(idx / np.roll(idx, 1)).clip(-1, 1) * (np.arange(T) > 0) + rng.normal(0, vol / 2, T)))
    if perpetual:
        px = (idx * 1.001)[:, None]
        exp_bar = np.array([10**12])
        c0 = np.zeros(T, np.int64)
        c1 = np.full(T, -1, np.int64)
        w1 = np.zeros(T)
        fund = np.where(np.arange(T) % 8 == 0, rng.normal(1e-4, 2e-4, T), 0.0)
    else:
        K = n_contracts
        exp_bar = np.sort(rng.choice(np.arange(T // (K + 1), T - 1), size=K - 1, replace=False))
        exp_bar = np.append(exp_bar, 10**12).astype(np.int64)
        px = np.full((T, K), np.nan)
        t = np.arange(T)
        for k in range(K):
            tau = np.maximum((exp_bar[k] if exp_bar[k] < T else T + 500) - t, 0) / (24 * 365)
            live = t <= exp_bar[k]
            px[live, k] = idx[live] * np.exp(0.08 * tau[live])
        c0 = np.zeros(T, np.int64)
        c1 = np.full(T, -1, np.int64)
        w1 = np.zeros(T)
        roll_at = []
        for k in range(K - 1):
            start = max(int(exp_bar[k]) - int(rng.integers(0, 4)) - grace + 1, 1)
            roll_at.append(start)
        done = np.array(roll_at) + grace - 1
        c0 = np.searchsorted(done, t, side="right").astype(np.int64)
        for k, s in enumerate(roll_at):
            if grace > 1:
                c1[s : s + grace - 1] = k + 1
                w1[s : s + grace - 1] = (np.arange(s, s + grace - 1) - s + 1) / grace
        fund = np.zeros(T)
    units = np.full(T, 1_000_000.0)
    if holding_changes:
        for when in rng.choice(np.arange(1, T), size=3, replace=False):
            units[when:] *= rng.uniform(0.5, 1.5)
    alt_value = units * coin
    alt_pnl = np.zeros(T)
    alt_pnl[1:] = units[:-1] * np.diff(coin)
    alt_flow = np.zeros(T)
    alt_flow[1:] = -np.diff(units) * coin[1:]
    alt_changed = np.zeros(T, bool)
    alt_changed[1:] = np.diff(units) != 0
    hi = idx * np.exp(np.abs(rng.normal(0, vol, T))) if with_high else np.full(T, np.nan)
    lo = idx * np.exp(-np.abs(rng.normal(0, vol, T))) if with_high else np.full(T, np.nan)
    hr = np.column_stack([rng.uniform(0.5, 1.5, T) for _ in range(n_rules)])
    return Market(
        px=px, idx=idx, idx_hi=hi, idx_lo=lo, c0=c0, c1=c1, w1=w1, exp_bar=exp_bar, fund_rate=fund,
        volume_usd=np.full(T, 5e6), vm_bar=(np.arange(T) % 24 == 0), alt_value=alt_value, alt_pnl=alt_pnl,
        alt_flow=alt_flow, alt_changed=alt_changed, hr=hr, contract_size=contract_size,
    )


def hand_market(
    *,
    idx: list[float],
    coin: list[float],
    units: float,
    contract_size: float,
    perpetual: bool = True,
) -> Market:
    """A small hand-built market: one contract priced at the index (no basis), constant
    coin units, hedge ratio 1 (the notional rule), no funding, no intrabar range."""
    T = len(idx)
    idx_a = np.asarray(idx, dtype=float)
    coin_a = np.asarray(coin, dtype=float)
    alt_pnl = np.zeros(T)
    alt_pnl[1:] = units * np.diff(coin_a)
    return Market(
        px=idx_a[:, None].copy(), idx=idx_a, idx_hi=np.full(T, np.nan), idx_lo=np.full(T, np.nan),
        c0=np.zeros(T, np.int64), c1=np.full(T, -1, np.int64), w1=np.zeros(T),
        exp_bar=np.array([10**12]), fund_rate=np.zeros(T), volume_usd=np.zeros(T), vm_bar=np.zeros(T, bool),
        alt_value=units * coin_a, alt_pnl=alt_pnl, alt_flow=np.zeros(T), alt_changed=np.zeros(T, bool),
        hr=np.ones((T, 1)), contract_size=contract_size,
    )
