"""The server's warm-up (components/warmup.py): it must load exactly the compiled kernels a real
funnel then uses, or the first funnel of a server still pays for them."""

from __future__ import annotations

import sys

from analytics import funnels
from components.warmup import MODULES, preload


def test_preload_imports_the_pages_modules_and_loads_the_kernels_real_funnels_use(tmp_path):
    from connectors import database
    from connectors.simulator import SimulationConfig, seed_database

    engine = database.get_engine(f"duckdb:///{tmp_path / 'warm.duckdb'}")
    seed_database(engine, SimulationConfig(traders=300, days=90, seed=3))
    timings = preload()
    assert set(timings) == {"imports_s", "kernels_s"}
    assert all(name in sys.modules for name in MODULES)
    kernels = (funnels._ordered_pass, funnels._unordered_pass, funnels._trends_pass)
    warmed = [list(kernel.signatures) for kernel in kernels]
    assert all(warmed)
    for order in funnels.ORDERS:
        spec = funnels.FunnelSpec(steps=("registered", "ftd", "trade"), window_s=30 * 86_400, order=order)
        assert funnels.compute_funnel(engine, spec).steps["count"].iloc[0] > 0
        if order != "unordered":  # trends are for ordered and strict funnels
            funnels.compute_funnel_trends(engine, spec, period="week")
    # No new specialisation was compiled: every call above ran the code the warm-up loaded.
    assert [list(kernel.signatures) for kernel in kernels] == warmed
