"""batches: bulk sends (send-bulk), one row per batch and one per item

Revision ID: 0010_batches
Revises: 0006
Create Date: 2026-12-02 09:45:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
import app.models.base

revision = '0010_batches'
down_revision = '0009_chats_groups'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'batches',
        sa.Column('id', sa.String(length=36), nullable=False),
        sa.Column('session_id', sa.String(length=36), nullable=False),
        sa.Column('api_key_id', sa.String(length=36), nullable=True),
        sa.Column('idempotency_key', sa.String(length=200), nullable=True),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('total', sa.Integer(), nullable=False),
        sa.Column('delay_ms', sa.Integer(), nullable=False),
        sa.Column('randomize_delay', sa.Boolean(), nullable=False),
        sa.Column('stop_on_error', sa.Boolean(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('next_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('claim_token', sa.String(length=36), nullable=True),
        sa.Column('claimed_until', app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_batches_api_key_id_api_keys'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_batches_session_id_sessions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_batches')),
        sa.UniqueConstraint('api_key_id', 'idempotency_key', name=op.f('uq_batches_api_key_id_idempotency_key')),
    )
    op.create_index('ix_batches_session_created', 'batches', ['session_id', 'created_at'], unique=False)
    op.create_table(
        'batch_items',
        sa.Column('batch_id', sa.String(length=36), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('chat_id', sa.String(length=100), nullable=False),
        sa.Column('type', sa.String(length=20), nullable=False),
        sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('message_id', sa.String(length=32), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_batch_items_batch_id_batches'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('batch_id', 'position', name=op.f('pk_batch_items')),
    )


def downgrade():
    op.drop_table('batch_items')
    op.drop_index('ix_batches_session_created', table_name='batches')
    op.drop_table('batches')
