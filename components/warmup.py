"""What the server does once at start so a broker's first page view does not pay for it.

A page's first run in a new server process imports pandas, Plotly, Altair, SQLAlchemy and the
analytics modules (about 2.5 s on this 2-core machine) and loads the funnel kernels' compiled code
(1-2 s; 13 s when a new checkout compiles them). ``cli.py serve`` calls :func:`preload` before the
server listens, so all of that happens before the first visitor instead of during their visit.
"""

from __future__ import annotations

import importlib
import time

# Everything a page imports on its first run, heaviest first (measured with py-spy on a cold visit).
MODULES: tuple[str, ...] = (
    "pandas", "numpy", "sqlalchemy", "altair", "plotly.graph_objects", "pyarrow", "duckdb_engine", "alembic",
    "analytics.kpis", "analytics.cohorts", "analytics.funnels", "analytics.lifecycle", "analytics.data_health",
    "components.overview_charts", "components.cohort_charts", "components.funnel_charts",
    "components.lifecycle_charts", "components.kpi_tiles", "components.tables", "components.health",
)


def preload() -> dict[str, float]:
    """Import the pages' modules and load the funnel kernels; seconds spent on each part."""
    started = time.perf_counter()
    for name in MODULES:
        importlib.import_module(name)
    imported = time.perf_counter()
    from analytics.funnels import warm_kernels

    warm_kernels()
    return {"imports_s": imported - started, "kernels_s": time.perf_counter() - imported}
