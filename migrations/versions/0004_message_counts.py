"""message_counts: per session, chat and direction, kept by triggers on messages

The history's `total` reads these few rows instead of counting every stored message (at a
million messages the count was ten times the page query; make bench).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

KEY = "session_id, chat_id, from_me"

# PostgreSQL: statement-level triggers with transition tables, so a COPY or a bulk delete
# updates each counter once per statement, not once per row; rows are locked in key order.
POSTGRES_UP = [
    f"""
    CREATE FUNCTION openwa_message_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO message_counts AS c ({KEY}, n)
        SELECT {KEY}, count(*) FROM new_rows GROUP BY {KEY} ORDER BY {KEY}
        ON CONFLICT ({KEY}) DO UPDATE SET n = c.n + EXCLUDED.n;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE FUNCTION openwa_message_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE message_counts AS c SET n = c.n - d.n
        FROM (SELECT {KEY}, count(*) AS n FROM old_rows GROUP BY {KEY} ORDER BY {KEY}) AS d
        WHERE c.session_id = d.session_id AND c.chat_id = d.chat_id AND c.from_me = d.from_me;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER messages_count_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION openwa_message_counts_insert()
    """,
    """
    CREATE TRIGGER messages_count_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION openwa_message_counts_delete()
    """,
]
POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS messages_count_delete ON messages",
    "DROP TRIGGER IF EXISTS messages_count_insert ON messages",
    "DROP FUNCTION IF EXISTS openwa_message_counts_delete()",
    "DROP FUNCTION IF EXISTS openwa_message_counts_insert()",
]
# SQLite has row triggers only.
SQLITE_UP = [
    f"""
    CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
        INSERT INTO message_counts ({KEY}, n) VALUES (NEW.session_id, NEW.chat_id, NEW.from_me, 1)
        ON CONFLICT ({KEY}) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
        UPDATE message_counts SET n = n - 1
        WHERE session_id = OLD.session_id AND chat_id = OLD.chat_id AND from_me = OLD.from_me;
    END
    """,
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS messages_count_delete",
    "DROP TRIGGER IF EXISTS messages_count_insert",
]


def upgrade():
    op.create_table('message_counts',
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('chat_id', sa.String(length=100), nullable=False),
    sa.Column('from_me', sa.Boolean(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_message_counts_session_id_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'chat_id', 'from_me', name=op.f('pk_message_counts'))
    )
    # Triggers first, then the backfill, in one transaction: nothing is counted twice or missed.
    for statement in POSTGRES_UP if op.get_bind().dialect.name == "postgresql" else SQLITE_UP:
        op.execute(statement)
    op.execute(f"INSERT INTO message_counts ({KEY}, n) "
               f"SELECT {KEY}, count(*) FROM messages GROUP BY {KEY}")


def downgrade():
    for statement in POSTGRES_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(statement)
    op.drop_table('message_counts')
