"""Jobs waiting for a crawl: a partial index, so claiming costs the same however many jobs are queued
or claimed; and the crawls the dispatcher scheduled, numbered per node (crawl log retention)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WAITING = sa.text("status = 'pending' AND scrapyd_jobid IS NULL")


def upgrade() -> None:
    op.create_index("ix_jobs_waiting", "jobs", ["created_at", "id"], postgresql_where=WAITING, sqlite_where=WAITING)
    op.create_table(
        "crawls",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("node_seq", sa.Integer(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_crawls_node_seq", "crawls", ["node", "node_seq"])


def downgrade() -> None:
    op.drop_index("ix_crawls_node_seq", table_name="crawls")
    op.drop_table("crawls")
    op.drop_index("ix_jobs_waiting", table_name="jobs")
