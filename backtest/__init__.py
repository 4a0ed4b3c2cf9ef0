"""hedgebt: how much risk does a short AI-index futures hedge remove from AI altcoins, what does
it cost, and how much collateral does it need?

The public API (see ``backtest.api`` and the README's "Python API" section)::

    import backtest as hb

    res = hb.run("demo.toml")            # -> Result: .ledger, .metrics, .summary, .events(), .plot, .save()
    grid = hb.compare("compare.toml")    # -> CompareResult: .table, .best(), .save()

Names are imported on first use, so ``import backtest`` stays light and the leaf modules
(``backtest.errors``, ``backtest.schema``) can be imported by any layer without pulling in
the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from backtest.api import CompareResult, Result, bundled_scenario, compare, load_config, run, scan, stress
    from backtest.config import Config

__all__ = ["Config", "CompareResult", "Result", "bundled_scenario", "compare", "load_config", "run", "scan", "stress",
           "__version__"]

_LAZY = {
    "Config": "backtest.config",
    "load_config": "backtest.api",
    "run": "backtest.api",
    "compare": "backtest.api",
    "Result": "backtest.api",
    "CompareResult": "backtest.api",
    "bundled_scenario": "backtest.api",
    "stress": "backtest.api",
    "scan": "backtest.api",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from backtest.versions import hedgebt_version

        return hedgebt_version()
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'backtest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
