"""Shared fixtures: named datasets and seeded randomness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator; every test that draws random numbers uses it."""
    return np.random.default_rng(20260124)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The bundled data folder."""
    return DATA


#: A scenario on :func:`write_synthetic_prices` data (``prices.parquet`` next to the config);
#: tests append ``[rebalance]`` / ``[[rules]]`` / ``[compare]`` tables as they need.
SYNTHETIC_SCENARIO = """
[scenario]
name = "synthetic"
start = "2024-01-01"
[data]
prices = "prices.parquet"
ohlc = ""
[position]
coins = ["COIN"]
units = [100000]
[index]
constituents = ["AAA", "BBB", "CCC", "DDD"]
min_history_days = 3
rebalance = "weekly"
max_weight = 0.4
"""


#: :data:`SYNTHETIC_SCENARIO` with one notional rule re-sized daily (the CLI and progress tests' scenario).
NOTIONAL_DAILY = SYNTHETIC_SCENARIO + '[rebalance]\nevery_bars = 24\n[[rules]]\nfamily = "notional"\n'


def write_notional_scenario(folder: Path) -> Path:
    """``folder/scenario.toml`` (:data:`NOTIONAL_DAILY`) on 40 days of :func:`write_synthetic_prices`."""
    write_synthetic_prices(folder / "prices.parquet", n_days=40)
    path = folder / "scenario.toml"
    path.write_text(NOTIONAL_DAILY, encoding="utf-8")
    return path


def write_synthetic_prices(
    path: Path,
    *,
    n_days: int = 90,
    symbols: tuple[str, ...] = ("COIN", "AAA", "BBB", "CCC", "DDD"),
    seed: int = 7,
    start: str = "2024-01-01",
) -> Path:
    """An hourly long-format price file like the bundled one: a coin and four index names
    driven by one common factor plus noise (seeded)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = n_days * 24
    ts = pd.date_range(start, periods=n, freq="h", tz="UTC")
    common = rng.normal(0, 0.01, n)
    frames = []
    for i, sym in enumerate(symbols):
        r = (1.2 if sym == "COIN" else 1.0) * common + rng.normal(0, 0.006, n)
        close = (0.5 + i) * np.exp(np.cumsum(r))
        frames.append(pd.DataFrame({"ts": ts, "symbol": sym, "close": close}))
    df = pd.concat(frames, ignore_index=True)
    df["symbol"] = df["symbol"].astype("string")
    df.to_parquet(path, index=False)
    return path


@pytest.fixture
def synthetic_prices(tmp_path: Path) -> Path:
    """Path of a 90-day hourly synthetic dataset (COIN + AAA..DDD)."""
    return write_synthetic_prices(tmp_path / "prices.parquet")


def synthetic_config(prices: Path, **sections) -> "object":
    """A small scenario on :func:`write_synthetic_prices` data; ``sections`` override tables."""
    from backtest.config import config_from_mapping

    raw = {
        "scenario": {"name": "synthetic", "start": "2024-01-01", "bar": "1h"},
        "data": {"prices": prices.name, "ohlc": "", "max_fill_bars": 6},
        "position": {"coins": ["COIN"], "kind": "units", "units": [100_000.0]},
        "index": {"constituents": ["AAA", "BBB", "CCC", "DDD"], "min_history_days": 3, "rebalance": "weekly",
                  "max_weight": 0.4, "min_constituents": 3},
        "futures": {"kind": "quarterly", "contract_size": 1.0, "basis_ann": 0.05},
        "rebalance": {"every_bars": 24, "whole_contracts": False},
        "margin": {"collateral_usd": 50_000.0, "reserve_usd": 100_000.0},
        "rules": [{"family": "notional", "fraction": 1.0}, {"family": "min_variance", "window": 120}],
    }
    for name, table in sections.items():
        if table is None:
            raw.pop(name, None)
        elif isinstance(table, dict) and isinstance(raw.get(name), dict):
            raw[name] = {**raw[name], **table}
        else:
            raw[name] = table
    return config_from_mapping(raw, base_dir=prices.parent)
