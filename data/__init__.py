"""hedgebt's bundled market data, installed as the package ``hedgebt_data``.

Only Parquet files and ``PROVENANCE.md`` live here; ``backtest.config.BUNDLED_DATA`` finds
the folder (with :mod:`importlib.resources` when hedgebt is installed from a wheel).
"""
