"""webhooks: the organizations' endpoints, the services' hooks, the outbox of events and the
record of delivery attempts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:35:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "service",
        sa.Column(
            "webhooks", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
    )
    op.create_table(
        "webhook_endpoint",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("authorization_scheme", sa.Text(), nullable=False),
        sa.Column("secrets", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "before_hook_timeout_ms",
            sa.Integer(),
            server_default=sa.text("2000"),
            nullable=False,
        ),
        sa.Column(
            "on_before_hook_failure",
            sa.Text(),
            server_default=sa.text("'refuse'"),
            nullable=False,
        ),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "authorization_scheme IN ('None', 'HMAC')",
            name=op.f("ck_webhook_endpoint_authorization_scheme_known"),
        ),
        sa.CheckConstraint(
            "cardinality(secrets) >= 1", name=op.f("ck_webhook_endpoint_has_secret")
        ),
        sa.CheckConstraint(
            "on_before_hook_failure IN ('refuse', 'book')",
            name=op.f("ck_webhook_endpoint_on_before_hook_failure_known"),
        ),
        sa.CheckConstraint(
            "before_hook_timeout_ms > 0",
            name=op.f("ck_webhook_endpoint_before_hook_timeout_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_webhook_endpoint_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_webhook_endpoint")),
    )
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("case_id", sa.UUID(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("hook", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("state", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_event_state_known"),
        ),
        sa.CheckConstraint("sequence >= 1", name=op.f("ck_webhook_event_sequence_positive")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_webhook_event_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_event")),
        sa.UniqueConstraint("case_id", "sequence", name=op.f("uq_webhook_event_case_id_sequence")),
    )
    op.create_index(
        "ix_webhook_event_pending",
        "webhook_event",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_event.id"],
            name=op.f("fk_webhook_attempt_event_id_webhook_event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempt")),
    )
    op.create_index(
        op.f("ix_webhook_attempt_event_id"), "webhook_attempt", ["event_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_attempt_event_id"), table_name="webhook_attempt")
    op.drop_table("webhook_attempt")
    op.drop_index(
        "ix_webhook_event_pending",
        table_name="webhook_event",
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.drop_table("webhook_event")
    op.drop_table("webhook_endpoint")
    op.drop_column("service", "webhooks")
