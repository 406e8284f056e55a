"""message actions: what a send carries beyond text, what later actions changed, and the
actions that are not sends (react, delete, edit, star, pin)

Revision ID: 0008_message_actions
Revises: 0006
Create Date: 2026-12-02 09:45:00
"""
from alembic import op
import sqlalchemy as sa
import app.models.base

revision = '0008_message_actions'
down_revision = '0007_media'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content', app.models.base.JSONType, nullable=True))
        batch_op.add_column(sa.Column('reactions', app.models.base.JSONType, nullable=True))
        batch_op.add_column(sa.Column('edited_at', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('deleted', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('starred', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('pinned_until', sa.BigInteger(), nullable=True))
    op.create_table(
        'message_actions',
        sa.Column('id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=36), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('chat_id', sa.String(length=100), nullable=False),
        sa.Column('target', sa.String(length=200), nullable=False),
        sa.Column('args', app.models.base.JSONType, nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('error_code', sa.String(length=32), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('api_key_id', sa.String(length=36), nullable=True),
        sa.Column('idempotency_key', sa.String(length=200), nullable=True),
        sa.Column('request_hash', sa.String(length=64), nullable=True),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'],
                                name=op.f('fk_message_actions_api_key_id_api_keys'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'],
                                name=op.f('fk_message_actions_session_id_sessions'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_actions')),
        sa.UniqueConstraint('api_key_id', 'idempotency_key',
                            name=op.f('uq_message_actions_api_key_id_idempotency_key')),
    )
    with op.batch_alter_table('message_actions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_actions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_actions_session_id'), ['session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('message_actions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_actions_session_id'))
        batch_op.drop_index(batch_op.f('ix_message_actions_created_at'))
    op.drop_table('message_actions')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('pinned_until')
        batch_op.drop_column('starred')
        batch_op.drop_column('deleted')
        batch_op.drop_column('edited_at')
        batch_op.drop_column('reactions')
        batch_op.drop_column('content')
