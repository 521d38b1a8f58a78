"""A small broker with trained and scored models, for tests of what reads them (the Predictions page,
Trader 360, segment rules on scores).

``trained_database(target)`` seeds :data:`BROKER` (5,000 traders over 170 days, a fixed end: the same
data on every run), trains each model asked for (its first run is the active one), saves
``candidates`` more runs of the first model (trained with other seeds: figures of their own), and
scores the models asked for. On this machine: seeding 5 s, training churn 2.5 s, deposit 4 s, FTD 5.5 s,
scoring each about 1 s. All three models train on it (the FTD model, the rarest outcome, with a few
first deposits to spare in each half of its test snapshot).

A module-scoped fixture builds it once and each test opens a copy::

    @pytest.fixture(scope="module")
    def trained(tmp_path_factory) -> Path:
        return trained_file(tmp_path_factory.mktemp("models") / "trained.duckdb", candidates=1)

    @pytest.fixture
    def db_url(trained, use_broker) -> str:  # tests/app/conftest.py's copy into the test's app database
        return use_broker(trained)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from connectors import database
from connectors.simulator import SimulationConfig, seed_database

# Large enough that the FTD model, the rarest outcome, has 20+ first deposits in each half of its test
# snapshot (3,000 traders over 400 days did not: NotEnoughHistory for all three models).
BROKER = SimulationConfig(traders=5_000, days=170, seed=7, end=date(2026, 11, 1))
# One XGBoost thread: these fits take well under a second, and the suite runs in two workers on two
# cores (where, without OMP_WAIT_POLICY=PASSIVE, two spinning threads per fit made a 0.5 s fit take
# 7-16 s). The stored params leave n_jobs out.
TRAIN_PARAMS = {"n_jobs": 1}


def trained_database(target: str | Path | sa.Engine, *, models: Sequence[str] = ("churn",),
                     scored: Sequence[str] | None = None, candidates: int = 0,
                     config: SimulationConfig = BROKER) -> sa.Engine:
    """Seed ``config`` into ``target`` (a DuckDB file path, or an empty migrated engine), train and
    save ``models`` (each active), ``candidates`` more runs of ``models[0]`` (candidates), and score
    ``scored`` (default: every model trained). The engine, still open: dispose of it (and
    ``database.dispose_engines()``) before another process or a copy opens a DuckDB file."""
    from analytics.models.dataset import MODEL_FEATURES
    from analytics.models.registry import save_run
    from analytics.models.scoring import score_model
    from analytics.models.specs import model_spec
    from analytics.models.training import train_model

    if isinstance(target, sa.Engine):
        engine = target
    else:
        engine = database.get_engine(f"duckdb:///{Path(target)}")
        database.upgrade_schema(engine)
    seed_database(engine, config)
    for name in models:
        trained = train_model(engine, model_spec(name), params=TRAIN_PARAMS)
        save_run(engine, trained, by="test", features=MODEL_FEATURES)
    for seed in range(1, candidates + 1):
        trained = train_model(engine, model_spec(models[0]), params=TRAIN_PARAMS, seed=seed)
        save_run(engine, trained, by="test", features=MODEL_FEATURES)
    for name in models if scored is None else scored:
        score_model(engine, model_spec(name), by="test")
    return engine


def trained_file(path: Path, **kwargs) -> Path:
    """:func:`trained_database` into the DuckDB file ``path``, closed afterwards (ready to be copied or
    opened by a server); ``path``."""
    engine = trained_database(path, **kwargs)
    engine.dispose()
    database.dispose_engines()
    return path
