"""Prometheus metrics, defined once. Names and labels follow section 10.6 of the
infrastructure document; every process increments the ones it produces."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

messages_sent_total = Counter(
    "messages_sent_total", "Messages sent through an engine",
    ["session_id", "type", "status"])
message_send_duration_seconds = Histogram(
    "message_send_duration_seconds", "Time an engine took to accept a message",
    ["session_id", "type"], buckets=(0.1, 0.5, 1, 2, 5, 10))
webhook_deliveries_total = Counter(
    "webhook_deliveries_total", "Webhook delivery attempts by outcome",
    ["event", "status"])
webhook_delivery_duration_seconds = Histogram(
    "webhook_delivery_duration_seconds", "Duration of one webhook delivery attempt",
    ["event"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30))
celery_tasks_total = Counter(
    "celery_tasks_total", "Celery tasks finished, by task and state", ["task", "state"])
celery_task_duration_seconds = Histogram(
    "celery_task_duration_seconds", "Celery task run time", ["task"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120))

# -- the API process ----------------------------------------------------------------
http_requests_total = Counter(
    "http_requests_total", "HTTP requests by route template and status",
    ["method", "path", "status"])
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds", "HTTP request duration by route template",
    ["method", "path"], buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5))
