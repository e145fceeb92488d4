"""Jobs waiting for a crawl: a partial index, so claiming costs the same however many jobs are queued
or claimed

Revision ID: 0005
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

WAITING = sa.text("status = 'pending' AND scrapyd_jobid IS NULL")


def upgrade() -> None:
    op.create_index("ix_jobs_waiting", "jobs", ["created_at", "id"], postgresql_where=WAITING, sqlite_where=WAITING)


def downgrade() -> None:
    op.drop_index("ix_jobs_waiting", table_name="jobs")
