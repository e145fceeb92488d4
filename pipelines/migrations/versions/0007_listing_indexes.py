"""Indexes for the listings (GET /api/v1/batches, /jobs, /domains: newest first, keyset paged)

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_batch_jobs_created", "batch_jobs", ["created_at", "id"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_domain_created", "jobs", ["domain", "created_at"])
    op.create_index("ix_domains_last_scan", "domains", ["last_scan_at", "id"])
    op.create_index("ix_domains_url_count", "domains", ["url_count", "id"])


def downgrade() -> None:
    for name, table in (("ix_domains_url_count", "domains"), ("ix_domains_last_scan", "domains"),
                        ("ix_jobs_domain_created", "jobs"), ("ix_jobs_created", "jobs"),
                        ("ix_batch_jobs_created", "batch_jobs")):
        op.drop_index(name, table_name=table)
