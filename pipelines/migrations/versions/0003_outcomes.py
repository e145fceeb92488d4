"""Job outcome (pipelines.status.Outcome) and the origin that answered

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OUTCOMES = ("ok", "warnings", "no_sitemap", "unreachable", "refused", "sitemaps_failed", "interrupted", "crawl_lost",
            "database", "dispatch", "error", "cancelled")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.Enum(*OUTCOMES, name="job_outcome", native_enum=False,
                                                         create_constraint=True, length=24), nullable=True))
        batch_op.add_column(sa.Column("origin", sa.Text(), nullable=True))
    # Jobs finished before outcomes existed: the closest truthful outcome from what they recorded.
    op.execute("UPDATE jobs SET outcome = 'cancelled' WHERE status = 'cancelled'")
    op.execute("UPDATE jobs SET outcome = CASE WHEN sitemaps_found = 0 THEN 'no_sitemap' "
               "WHEN sitemaps_failed > 0 THEN 'warnings' ELSE 'ok' END WHERE status = 'complete'")
    op.execute("UPDATE jobs SET outcome = CASE WHEN error LIKE 'could not reach%' THEN 'unreachable' "
               "WHEN error LIKE 'interrupted%' THEN 'interrupted' WHEN error LIKE 'database%' THEN 'database' "
               "ELSE 'error' END WHERE status = 'failed'")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("origin")
        batch_op.drop_column("outcome")
