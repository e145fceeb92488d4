"""API dispatcher columns and listing indexes

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import pipelines.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatched_at", pipelines.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("dispatch_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_jobs_batch_domain", ["batch_id", "domain"], unique=False)
        batch_op.create_index("ix_jobs_status_created", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status_created")
        batch_op.drop_index("ix_jobs_batch_domain")
        batch_op.drop_column("dispatch_attempts")
        batch_op.drop_column("dispatched_at")
