"""Task and queue names have one home (common/names.py), and they agree with the workers."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import celeryconfig
from app.common.names import DECLARED_QUEUES, TASK_ROUTES, Tasks, host_queue, session_queue

ROOT = Path(__file__).resolve().parents[1]
TASK_NAMES = [value for key, value in vars(Tasks).items() if key.isupper()]


@pytest.fixture(scope="module")
def worker_app():
    import tasks

    return tasks.celery_app


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_name_is_registered_by_a_worker(worker_app, name):
    assert name in worker_app.tasks, f"{name} is named in common/names.py but no task has it"


def test_every_registered_task_has_its_name_in_common_names(worker_app):
    ours = {name for name in worker_app.tasks if name.startswith("tasks.")}
    assert ours == set(TASK_NAMES)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_goes_to_a_declared_queue_or_a_session_or_host_queue(worker_app, name):
    routed = worker_app.amqp.router.route({}, name, args=(), kwargs={})
    queue = routed["queue"].name
    if name.startswith("tasks.sessions."):
        # The API names the queue (session.<id>, host.<name>); the default is only a fallback.
        assert queue == celeryconfig.task_default_queue
    else:
        assert queue in DECLARED_QUEUES
        assert any(re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"), name)
                   for pattern in TASK_ROUTES), f"{name} has no route"


def test_celeryconfig_declares_exactly_the_named_queues():
    assert tuple(q.name for q in celeryconfig.task_queues) == DECLARED_QUEUES
    assert {route["queue"] for route in celeryconfig.task_routes.values()} <= set(DECLARED_QUEUES)


def test_the_beat_schedule_uses_registered_names():
    assert {entry["task"] for entry in celeryconfig.beat_schedule.values()} <= set(TASK_NAMES)


def test_queue_formats():
    assert session_queue("abc") == "session.abc"
    assert host_queue("h1") == "host.h1"


def test_no_task_or_queue_name_is_written_outside_app_common_names():
    """Dotted task names and the session./host. queue formats are literals in one module."""
    offenders = []
    pattern = re.compile(r"""["']tasks\.[a-z_]+\.[a-z_*]+["']|f["'](?:session|host)\.\{""")
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("tasks/**/*.py"), ROOT / "celeryconfig.py"]:
        if path == ROOT / "app" / "common" / "names.py":
            continue  # their one home
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_message_and_session_statuses_are_enum_members_not_bare_strings():
    """Statuses are values of MessageStatus / SessionStatus (app/models), never retyped."""
    names = "|".join(["created", "initializing", "qr_ready", "authenticating", "ready",
                      "disconnected", "failed", "pending", "sending", "sent", "delivered", "read"])
    patterns = [re.compile(rf"""status\s*(?:==|!=|=|in)\s*\(?["'](?:{names})["']"""),
                re.compile(rf"""(?:set_status|_stage_status|_stop_for_good|_set_stopped)\([^)]*["']"""
                           rf"""(?:{names})["']""")]
    offenders = []
    for path in [*ROOT.glob("app/**/*.py"), *ROOT.glob("tasks/**/*.py")]:
        if path.parent.name == "models":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if any(pattern.search(line) for pattern in patterns):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
