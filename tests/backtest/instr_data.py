"""Synthetic price files for the instrument, scan and stress tests (seeded; no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def write_btc_coin_prices(path: Path, *, n_days: int = 60, seed: int = 11) -> Path:
    """Hourly closes: BTC and ETH random walks, four AI names on their own factor, and
    COIN = 1.3 x BTC returns + noise (so BTC is its natural hedge)."""
    rng = np.random.default_rng(seed)
    n = n_days * 24
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    btc = rng.normal(0, 0.008, n)
    eth = 0.3 * btc + rng.normal(0, 0.008, n)
    ai = rng.normal(0, 0.01, n)
    rets = {
        "BTC": btc,
        "ETH": eth,
        "COIN": 1.3 * btc + rng.normal(0, 0.006, n),
        **{s: ai + rng.normal(0, 0.005, n) for s in ("AAA", "BBB", "CCC", "DDD")},
    }
    start = {"BTC": 40_000.0, "ETH": 2_000.0, "COIN": 0.5, "AAA": 1.0, "BBB": 2.0, "CCC": 3.0, "DDD": 4.0}
    frames = [pd.DataFrame({"ts": ts, "symbol": s, "close": start[s] * np.exp(np.cumsum(r))}) for s, r in rets.items()]
    df = pd.concat(frames, ignore_index=True)
    df["symbol"] = df["symbol"].astype("string")
    df.to_parquet(path, index=False)
    return path


def write_scan_prices(path: Path, *, n_days: int = 45, seed: int = 5) -> Path:
    """Hourly closes for the coin scan: BTC, ETH, four AI names (AAA..DDD) on one factor,
    BTCLIKE = BTC returns + noise, AIC = AI factor + noise, NEW = only the last 10 days."""
    rng = np.random.default_rng(seed)
    n = n_days * 24
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    btc = rng.normal(0, 0.008, n)
    ai = rng.normal(0, 0.01, n)
    rets = {
        "BTC": btc,
        "ETH": 0.3 * btc + rng.normal(0, 0.008, n),
        "BTCLIKE": 1.2 * btc + rng.normal(0, 0.005, n),
        "AIC": 1.1 * ai + rng.normal(0, 0.006, n),
        "NEW": ai + rng.normal(0, 0.01, n),
        **{s: ai + rng.normal(0, 0.005, n) for s in ("AAA", "BBB", "CCC", "DDD")},
    }
    frames = []
    for i, (s, r) in enumerate(rets.items()):
        keep = slice(n - 10 * 24, n) if s == "NEW" else slice(0, n)
        frames.append(pd.DataFrame({"ts": ts[keep], "symbol": s, "close": (1.0 + i) * np.exp(np.cumsum(r))[keep]}))
    df = pd.concat(frames, ignore_index=True)
    df["symbol"] = df["symbol"].astype("string")
    df.to_parquet(path, index=False)
    return path
