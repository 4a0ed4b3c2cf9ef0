"""What every result's JSON record must say about how it was made (inputs, config, versions)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from backtest.windows import bundled_events_file


def assert_result_record(record: Mapping[str, Any], read: Mapping[str, Path], *, events: bool) -> None:
    """``record`` names each file of ``read`` (``{role: path}``) with its SHA-256, computed here,
    and the bundled event library exactly when ``events``; it holds the resolved config and the
    versions of hedgebt and of the packages that shape results (arch: every bootstrap)."""
    listed = {(i["role"], i["path"]): i["sha256"] for i in record["inputs"]}
    for role, path in read.items():
        assert listed[(role, path.name)] == hashlib.sha256(path.read_bytes()).hexdigest(), role
    events_file = bundled_events_file()
    assert (listed.get(("events", "events.toml")) == hashlib.sha256(events_file.read_bytes()).hexdigest()) is events
    assert record["config"]["data"]["prices"]
    assert record["hedgebt_version"] == importlib.metadata.version("hedgebt")
    assert record["packages"]["arch"] == importlib.metadata.version("arch")
    assert "vectorbt" not in record["packages"]
