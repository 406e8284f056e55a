"""The floor of the send path (issue 18): what the architecture's fixed layers alone cost a
send that keeps the durability contract, with none of the product's own work.

One module is both sides. The HTTP side (``app``, served by gunicorn with the API's own
settings, as bare_flask) commits a row ``pending`` (BEGIN, INSERT, COMMIT: committed before
enqueue), sends a Celery task to a solo-pool worker with the platform's settings (celeryconfig:
acks late, task events, the ``task-sent`` event), and waits for the reply with one ``BLPOP``
on a list of the send's own, as send-text does. The worker side (``celery_app``) records the
row ``sent`` (BEGIN, UPDATE, COMMIT) and only then pushes the reply. No key check, no
validation, no session look-up, no order, no engine, no webhook outbox, no metrics, no live
events: the product's work is what send-text costs above this.

    BARE_SEND_DB=postgresql://... BENCH_QUEUE=... REDIS_URL=... \
        gunicorn -k gthread -w 2 --threads 8 --chdir scripts/bench bare_send:app
    ... celery -A bare_send:celery_app worker --pool solo -Q $BENCH_QUEUE
"""
import os
import uuid

import redis
import sqlalchemy as sa
from celery import Celery
from flask import Flask, jsonify, request

QUEUE = os.environ.get("BENCH_QUEUE", "bench.bare_send")
TASK = "bench.bare_send"
#: Seconds the HTTP side waits for its reply (a send that gets none answers 504).
WAIT_SECONDS = 10
#: Seconds a reply nobody took stays on its list.
REPLY_TTL = 60

metadata = sa.MetaData()
rows = sa.Table("bench_bare_send", metadata,
                sa.Column("id", sa.String(32), primary_key=True),
                sa.Column("body", sa.Text),
                sa.Column("status", sa.String(16), nullable=False))
_INSERT = rows.insert()
_SENT = rows.update().where(rows.c.id == sa.bindparam("row_id")).values(status="sent")

celery_app = Celery("bench_bare_send")
celery_app.config_from_object("celeryconfig")
app = Flask(__name__)
_engine: sa.Engine | None = None
_redis: redis.Redis | None = None


def engine() -> sa.Engine:
    global _engine
    if _engine is None:
        _engine = sa.create_engine(os.environ["BARE_SEND_DB"], pool_size=16)
    return _engine


def client() -> redis.Redis:
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    return _redis


def create_table() -> None:
    metadata.create_all(engine())


def reply_key(row_id: str) -> str:
    return f"bench:bare_send:{row_id}"


@celery_app.task(name=TASK, ignore_result=True)
def record_sent(row_id: str) -> None:
    with engine().begin() as connection:
        connection.execute(_SENT, {"row_id": row_id})
    with client().pipeline() as pipe:
        pipe.rpush(reply_key(row_id), "sent")
        pipe.expire(reply_key(row_id), REPLY_TTL)
        pipe.execute()


@app.post("/send")
def send():  # type: ignore[no-untyped-def]
    body = request.get_json(silent=True) or {}
    row_id = uuid.uuid4().hex
    with engine().begin() as connection:
        connection.execute(_INSERT, {"id": row_id, "body": body.get("text"), "status": "pending"})
    celery_app.send_task(TASK, [row_id], queue=QUEUE, ignore_result=True)
    if client().blpop([reply_key(row_id)], timeout=WAIT_SECONDS) is None:
        return jsonify({"id": row_id, "status": "pending"}), 504
    return jsonify({"id": row_id, "status": "sent"}), 201
