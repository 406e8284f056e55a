"""webhook lines: deliveries carry their order key and a per-row claim (lease)

Deliveries are now made in order per chat (WEBHOOK_ORDER=chat) or per webhook, by any
number of workers at once, each holding a renewed claim on the rows it delivers; the
webhook-wide lock (`webhooks.locked_until`) is gone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:30:00
"""
from alembic import op
import sqlalchemy as sa
import app.models.base

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('order_key', sa.String(length=100), server_default='', nullable=False))
        batch_op.add_column(sa.Column('claim_token', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_webhook_deliveries_lines', ['webhook_id', 'status', 'order_key', 'seq'], unique=False)
    # Rows already waiting keep per-chat order: their key is the chat the event names.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE webhook_deliveries SET order_key = LEFT(COALESCE(data->>'chatId', ''), 100) "
                   "WHERE status = 'pending'")
    else:
        op.execute("UPDATE webhook_deliveries SET order_key = "
                   "SUBSTR(COALESCE(json_extract(data, '$.chatId'), ''), 1, 100) WHERE status = 'pending'")
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('locked_until')


def downgrade():
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_until', app.models.base.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_deliveries_lines')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claim_token')
        batch_op.drop_column('order_key')
