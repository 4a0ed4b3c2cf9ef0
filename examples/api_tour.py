# %% [markdown]
# # hedgebt from Python: a tour of the API
#
# A notebook-style script (cells marked `# %%`: open it in Jupyter with jupytext or in VS Code,
# or run it whole with `python examples/api_tour.py`). `tests/test_examples.py` executes it.
# Everything comes back as pandas objects and matplotlib figures; nothing is written to disk
# until you ask.

# %%
import sys
import tempfile
from pathlib import Path

import backtest as hb

# The bundled FET scenario, on a shorter window so the tour runs in seconds. Any key of the
# scenario file can be overridden the same way (validated exactly like the file).
res = hb.run("demo.toml", scenario={"start": "2024-01-01", "end": "2024-06-30"})
print(res)

# %% One row per rule: hedge effectiveness with its bootstrap interval, costs, margin, VaR
res.metrics[["rule", "he_horizon", "he_headline", "he_ci_lo", "he_ci_hi", "he_bar",
             "cost_drag_bps_per_year", "margin_calls"]]

# %% The per-bar ledger: positions, prices, every P&L component, margin
notional = res.ledger.query("rule == 'notional'")
notional[["ts", "alt_value", "contracts", "equity_hedged", "equity_unhedged", "margin_balance"]].tail()

# %% What the hedge did in a named market swing (bundled windows or your own [events.<name>])
res.events(["nvidia_rally_2024"])[["event", "rule", "coin_return", "index_return", "pnl_unhedged",
                                   "pnl_hedged", "hedge_effectiveness"]]

# %% Figures are matplotlib Figures: they show inline in a notebook; single-panel ones take ax=
fig = res.plot.equity()
margin = res.plot.margin()

# %% Change one thing and compare: weekly instead of daily re-sizing
weekly = hb.run("demo.toml", scenario={"start": "2024-01-01", "end": "2024-06-30"},
                rebalance={"every_bars": 168})
both = {"daily": res.metrics.set_index("rule"), "weekly": weekly.metrics.set_index("rule")}
for name, m in both.items():
    print(f"{name:>6}: HE {m.loc['notional', 'he_headline']:.3f} at {m.loc['notional', 'he_horizon']}, "
          f"cost {m.loc['notional', 'cost_drag_bps_per_year']:.0f} bps/yr")

# %% Save exactly what `hedgebt run` writes, and read it back without re-simulating
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "tour"
res.save(out)
again = hb.Result.load(out)
assert again.summary == res.summary
print("wrote", sorted(p.name for p in out.iterdir()))
