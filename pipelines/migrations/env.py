"""Alembic environment: runs on the connection that `pipelines.db.upgrade` hands over,
or on $DATABASE_URL when called as `alembic upgrade head`."""

from alembic import context

from pipelines.db import database_url, make_engine
from pipelines.models import Base

target_metadata = Base.metadata


def run() -> None:
    conn = context.config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(database_url())
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
