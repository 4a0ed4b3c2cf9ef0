"""Reports of hedgebt result folders: event windows, risk statistics, figures and a PDF.

Everything here only reads what the simulator wrote; nothing re-simulates.
"""

from __future__ import annotations

from reports.events import Event, event_table, load_events, select_events
from reports.render import CompareFiles, ReportFiles, render_compare, render_report

__all__ = [
    "CompareFiles",
    "Event",
    "ReportFiles",
    "event_table",
    "load_events",
    "render_compare",
    "render_report",
    "select_events",
]
