"""media: stored files (content-addressed) and the messages that carry them (issue 12)

Revision ID: 0007_media
Revises: 0006
Create Date: 2026-12-02 09:40:00
"""
from alembic import op
import sqlalchemy as sa
import app.models.base

revision = '0007_media'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'media_objects',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('mimetype', sa.String(length=100), nullable=False),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sha256', name=op.f('pk_media_objects')),
    )
    op.create_index(op.f('ix_media_objects_last_used_at'), 'media_objects', ['last_used_at'], unique=False)
    op.create_table(
        'media_refs',
        sa.Column('message_id', sa.String(length=32), nullable=False),
        sa.Column('session_id', sa.String(length=36), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_media_refs_message_id_messages'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('message_id', name=op.f('pk_media_refs')),
    )
    op.create_index('ix_media_refs_sha256', 'media_refs', ['sha256'], unique=False)
    op.create_index('ix_media_refs_session', 'media_refs', ['session_id'], unique=False)


def downgrade():
    op.drop_index('ix_media_refs_session', table_name='media_refs')
    op.drop_index('ix_media_refs_sha256', table_name='media_refs')
    op.drop_table('media_refs')
    op.drop_index(op.f('ix_media_objects_last_used_at'), table_name='media_objects')
    op.drop_table('media_objects')
