"""Webhooks: a signing secret per API key, and the deliveries of batches and single scans

Revision ID: 0008
Revises: 0005
"""
import secrets

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

STATUSES = ("waiting", "pending", "delivered", "failed")


def new_secret() -> str:  # the same form as api.webhooks.new_webhook_secret
    return "whsec_" + secrets.token_urlsafe(32)


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_secret", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    keys = sa.table("api_keys", sa.column("id", sa.Integer), sa.column("webhook_secret", sa.String))
    for (key_id,) in conn.execute(sa.select(keys.c.id)).all():  # existing keys get theirs now
        conn.execute(sa.update(keys).where(keys.c.id == key_id).values(webhook_secret=new_secret()))
    ts = lambda name: sa.Column(name, sa.DateTime(timezone=True), nullable=True)  # noqa: E731
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), sa.ForeignKey("batch_jobs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("job_id", sa.Uuid(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("key_name", sa.String(length=64), nullable=False),
        sa.Column("callback_url", sa.Text(), nullable=False),
        sa.Column("status", sa.Enum(*STATUSES, name="delivery_status", native_enum=False, create_constraint=True,
                                    length=16), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        ts("ready_at"), ts("first_attempt_at"), ts("last_attempt_at"), ts("next_attempt_at"), ts("delivered_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", name="uq_webhook_deliveries_batch_id"),
        sa.UniqueConstraint("job_id", name="uq_webhook_deliveries_job_id"),
        sa.CheckConstraint("(batch_id IS NULL) <> (job_id IS NULL)", name="ck_webhook_deliveries_subject"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("webhook_secret")
