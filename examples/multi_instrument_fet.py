"""Does BTC add anything beyond the AI index for FET? In and out of sample, per bar, before costs.

Run from the repository root: ``python examples/multi_instrument_fet.py``

In sample, the OLS R^2 of FET returns on index + BTC futures returns can only be >= either single one.
Out of sample, the hedge of bar t uses weights estimated on bars up to t - 1 (rolling 720 hourly bars):
single-instrument rolling min-variance on the index vs two-instrument ``multi_min_variance`` weights.
This compares hedged *returns* (no costs, no margin); the full replay with costs, rolls and isolated margin
per leg is ``hedgebt run backtest/scenarios/multi_fet.toml --out out/multi``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import statsmodels.api as sm

from backtest.config import load_config
from backtest.engine import coin_and_futures_returns, prepare
from strategies.multi import MultiMinVariance
from strategies.rules import MinVariance

WINDOW = 720


def main() -> None:
    cfg = load_config("backtest/scenarios/instruments.toml")
    p_idx = prepare(cfg)
    p_btc = prepare(replace(cfg, futures=replace(cfg.futures, underlying="BTC")))
    ts = p_idx.ts.intersection(p_btc.ts)
    coin, f_idx = coin_and_futures_returns(p_idx.market)
    _, f_btc = coin_and_futures_returns(p_btc.market)
    ii, ib = p_idx.ts.get_indexer(ts), p_btc.ts.get_indexer(ts)
    y, X = coin[ii], np.column_stack([f_idx[ii], f_btc[ib]])
    ok = np.isfinite(y) & np.isfinite(X).all(axis=1)
    for name, cols in (("index", [0]), ("BTC", [1]), ("index+BTC", [0, 1])):
        r2 = sm.OLS(y[ok], sm.add_constant(X[ok][:, cols])).fit().rsquared
        print(f"{name:<10} in-sample R^2 {r2:.4f}")
    weights = {
        "index": MinVariance(window=WINDOW).hedge_ratio(y, X[:, 0])[:, None],
        "index+BTC": MultiMinVariance(instruments=("index", "BTC"), window=WINDOW).weights(y, X),
    }
    for name, w in weights.items():
        cols = [0] if w.shape[1] == 1 else [0, 1]
        hedged = y[1:] - (w[:-1] * X[1:, cols]).sum(axis=1)
        keep = ok[1:] & (np.arange(1, len(y)) > WINDOW)
        he = 1 - np.var(hedged[keep], ddof=1) / np.var(y[1:][keep], ddof=1)
        print(f"{name:<10} out-of-sample HE (per bar, before costs) {he:.4f}")


if __name__ == "__main__":
    main()
