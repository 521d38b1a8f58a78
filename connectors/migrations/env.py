"""Alembic environment: runs migrations on the engine handed over by connectors.database."""

from __future__ import annotations

from alembic import context
from alembic.ddl.impl import DefaultImpl

from connectors.schema import metadata


class DuckDBImpl(DefaultImpl):
    """Lets Alembic drive DuckDB through duckdb_engine with its generic DDL."""

    __dialect__ = "duckdb"
    transactional_ddl = True


def run_migrations() -> None:
    engine = context.config.attributes.get("engine")
    if engine is None:  # plain `alembic` command line: build one from the ini's URL
        import sqlalchemy as sa

        engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
