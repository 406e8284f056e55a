"""The limit of the task layer: a no-op Celery task on the platform's broker and result
backend with the platform's own settings (celeryconfig), run by a solo-pool worker like a
session host.

    REDIS_URL=... celery -A bare_celery worker --pool solo -Q $BENCH_QUEUE
"""
import os

from celery import Celery

app = Celery("bench_bare")
app.config_from_object("celeryconfig")
QUEUE = os.environ.get("BENCH_QUEUE", "bench.noop")


@app.task(name="bench.noop")
def noop(payload: dict) -> dict:
    return {"ok": True, "n": payload.get("n")}
