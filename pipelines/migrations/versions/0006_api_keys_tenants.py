"""API keys, tenants of batches and jobs, server-side secrets

Revision ID: 0006
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import pipelines.models

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing work belongs to the default tenant (visible to admin keys, and with API_AUTH=off).
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant", sa.String(length=64), server_default="default", nullable=False))
        batch_op.create_index("ix_jobs_tenant_created", ["tenant", "created_at"], unique=False)
    with op.batch_alter_table("batch_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant", sa.String(length=64), server_default="default", nullable=False))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", pipelines.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", pipelines.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("app_secrets")
    op.drop_table("api_keys")
    with op.batch_alter_table("batch_jobs", schema=None) as batch_op:
        batch_op.drop_column("tenant")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_created")
        batch_op.drop_column("tenant")
