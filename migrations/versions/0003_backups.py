"""backups: one row per backup run, with its status

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 05:27:13.886512
"""
from alembic import op
import sqlalchemy as sa
import app.models.base

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('backups',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('storage', sa.String(length=16), nullable=False),
    sa.Column('location', sa.String(length=500), nullable=False),
    sa.Column('database_backend', sa.String(length=16), nullable=False),
    sa.Column('alembic_revision', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backups'))
    )
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.create_index('ix_backups_status_started', ['status', 'started_at'], unique=False)


def downgrade():
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.drop_index('ix_backups_status_started')

    op.drop_table('backups')
