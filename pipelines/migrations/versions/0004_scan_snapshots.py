"""Scan snapshots: pages and sitemaps become per scan (pipelines.scans); jobs.pruned_at

Before, `pages` held one row per (domain, URL), updated in place by every scan (first/last seen job),
and `sitemaps` one row per (domain, URL) likewise. Now each scan keeps its own rows: pages keyed
(job_id, url), sitemaps unique (job_id, url).

Existing rows: each page row goes to its `last_seen_job_id`, each sitemap row to its `last_job_id`
(rows without one are dropped). The older snapshots cannot be rebuilt: a job whose pages were all
seen again by a later scan keeps its counts in `jobs` but lists only the URLs no later scan saw
(as it did before this migration). first_seen/last_seen columns are dropped.

Revision ID: 0004
Revises: 0007
"""
import contextlib
import warnings

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_domain_finished", ["domain_id", "finished_at"], unique=False)

    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.Uuid(), nullable=True))
    op.execute("UPDATE pages SET job_id = last_seen_job_id")
    with _pages_rebuilt() as batch_op:
        batch_op.alter_column("job_id", existing_type=sa.Uuid(), nullable=False)
        if not _sqlite():
            batch_op.drop_constraint("pk_pages", type_="primary")
        batch_op.create_primary_key("pk_pages", ["job_id", "url"])
        for name in ("first_seen_job_id", "last_seen_job_id", "first_seen_at", "last_seen_at"):
            batch_op.drop_column(name)

    with op.batch_alter_table("sitemaps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.Uuid(), nullable=True))
    op.execute("UPDATE sitemaps SET job_id = last_job_id")
    op.execute("DELETE FROM sitemaps WHERE job_id IS NULL")
    with op.batch_alter_table("sitemaps", schema=None) as batch_op:
        batch_op.alter_column("job_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_constraint("uq_sitemaps_domain_url", type_="unique")
        batch_op.create_unique_constraint("uq_sitemaps_job_url", ["job_id", "url"])
        batch_op.drop_index("ix_sitemaps_last_job_id")
        batch_op.drop_column("first_job_id")
        batch_op.drop_column("last_job_id")


def downgrade() -> None:
    """Back to one row per (domain, URL): the newest scan's row of each URL is kept."""
    with op.batch_alter_table("sitemaps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_job_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("last_job_id", sa.Uuid(), nullable=True))
    op.execute("UPDATE sitemaps SET first_job_id = job_id, last_job_id = job_id")
    op.execute("DELETE FROM sitemaps WHERE id NOT IN (SELECT max(id) FROM sitemaps GROUP BY domain_id, url)")
    with op.batch_alter_table("sitemaps", schema=None) as batch_op:
        batch_op.drop_constraint("uq_sitemaps_job_url", type_="unique")
        batch_op.create_unique_constraint("uq_sitemaps_domain_url", ["domain_id", "url"])
        batch_op.create_index("ix_sitemaps_last_job_id", ["last_job_id"], unique=False)
        batch_op.drop_column("job_id")

    now = "CURRENT_TIMESTAMP"
    with op.batch_alter_table("pages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_seen_job_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("last_seen_job_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(f"UPDATE pages SET first_seen_job_id = job_id, last_seen_job_id = job_id, first_seen_at = {now}, "
               f"last_seen_at = {now}")
    op.execute("DELETE FROM pages WHERE EXISTS (SELECT 1 FROM pages newer JOIN jobs nj ON nj.id = newer.job_id "
               "JOIN jobs oj ON oj.id = pages.job_id WHERE newer.domain_id = pages.domain_id "
               "AND newer.url = pages.url AND (nj.created_at > oj.created_at "
               "OR (nj.created_at = oj.created_at AND nj.id > oj.id)))")
    with _pages_rebuilt() as batch_op:
        if not _sqlite():
            batch_op.drop_constraint("pk_pages", type_="primary")
        batch_op.create_primary_key("pk_pages", ["domain_id", "url"])
        for name in ("first_seen_job_id", "last_seen_job_id", "first_seen_at", "last_seen_at"):
            batch_op.alter_column(name, nullable=False)
        batch_op.drop_column("job_id")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_domain_finished")
        batch_op.drop_column("pruned_at")


@contextlib.contextmanager
def _pages_rebuilt():
    """A batch on `pages` that changes its primary key: SQLite copies the table (SQLAlchemy warns that
    the copy's primary key differs from the reflected one, which is the point)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*_alembic_tmp_pages.*primary_key")
        with op.batch_alter_table("pages", schema=None, recreate="always" if _sqlite() else "auto") as batch_op:
            yield batch_op


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"
