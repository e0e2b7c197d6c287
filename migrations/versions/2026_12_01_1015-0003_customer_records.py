"""customer records: the customers table's field types, fields, key values and erasure

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "organization",
        sa.Column(
            "customers_table_id",
            sa.UUID(),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
    )
    op.add_column("organization", sa.Column("customer_display_name", sa.Text(), nullable=True))
    op.create_unique_constraint(
        op.f("uq_organization_customers_table_id"), "organization", ["customers_table_id"]
    )

    op.alter_column("customer_record", "display_name", existing_type=sa.Text(), nullable=True)
    op.add_column(
        "customer_record",
        sa.Column(
            "fields",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column(
        "customer_record",
        sa.Column(
            "date_created",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column(
        "customer_record",
        sa.Column(
            "date_updated",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column(
        "customer_record", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_check_constraint(
        op.f("ck_customer_record_erased_is_empty"),
        "customer_record",
        "erased_at IS NULL OR (display_name IS NULL AND fields = '{}')",
    )

    op.create_table(
        "customer_field_type",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("is_key", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_required", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "options", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column("color_code", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind <> 'choice' OR cardinality(options) > 0",
            name=op.f("ck_customer_field_type_choice_has_options"),
        ),
        sa.CheckConstraint(
            "kind IN ('text', 'number', 'boolean', 'date', 'choice', 'phone', 'email')",
            name=op.f("ck_customer_field_type_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organization.id"],
            name=op.f("fk_customer_field_type_organization_id_organization"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_field_type")),
        sa.UniqueConstraint(
            "organization_id", "slug", name=op.f("uq_customer_field_type_organization_id_slug")
        ),
    )
    op.create_table(
        "customer_key",
        sa.Column("field_type_id", sa.UUID(), nullable=False),
        sa.Column("value_digest", sa.LargeBinary(), nullable=False),
        sa.Column("record_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["field_type_id"],
            ["customer_field_type.id"],
            name=op.f("fk_customer_key_field_type_id_customer_field_type"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["customer_record.id"],
            name=op.f("fk_customer_key_record_id_customer_record"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("field_type_id", "value_digest", name=op.f("pk_customer_key")),
    )
    op.create_index(op.f("ix_customer_key_record_id"), "customer_key", ["record_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_customer_key_record_id"), table_name="customer_key")
    op.drop_table("customer_key")
    op.drop_table("customer_field_type")
    op.drop_constraint(op.f("ck_customer_record_erased_is_empty"), "customer_record", type_="check")
    op.drop_column("customer_record", "erased_at")
    op.drop_column("customer_record", "date_updated")
    op.drop_column("customer_record", "date_created")
    op.drop_column("customer_record", "fields")
    # An erased record has no display name: give it an empty one, as the old schema needs.
    op.execute("UPDATE customer_record SET display_name = '' WHERE display_name IS NULL")
    op.alter_column("customer_record", "display_name", existing_type=sa.Text(), nullable=False)
    op.drop_constraint(op.f("uq_organization_customers_table_id"), "organization", type_="unique")
    op.drop_column("organization", "customer_display_name")
    op.drop_column("organization", "customers_table_id")
