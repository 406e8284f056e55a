"""webhooks: inlineMedia, a message event's small media carried as base64 (issue 12.4)

Revision ID: 0011_webhook_inline_media
Revises: 0010_batches
Create Date: 2026-12-02 13:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0011_webhook_inline_media'
down_revision = '0010_batches'
branch_labels = None
depends_on = None


def upgrade():
    # Existing webhooks keep what they delivered: false.
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inline_media', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('inline_media')
