"""Bulk sends: one task per batch on the ``batches`` queue (app.services.batches.run)."""
from __future__ import annotations

from typing import Any

from app.common.names import Queues, Tasks
from app.services import batches
from tasks.base import openwa_task


@openwa_task(Tasks.RUN_BATCH)
def run_batch(batch_id: str) -> dict[str, Any]:
    """Feed the batch's items to its session's queue, with its delay, until it ends."""

    def later(seconds: float) -> None:
        run_batch.apply_async(args=[batch_id], queue=Queues.BATCHES, countdown=seconds,
                              task_id=batches.task_id(batch_id))

    return batches.run(batch_id, later)


@openwa_task(Tasks.SWEEP_BATCHES)
def sweep() -> dict[str, Any]:
    """Enqueue again the batches whose task message was lost."""
    return {"resumed": batches.resume_stale()}
