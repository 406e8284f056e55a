"""app.launch.guard with real processes: a child dies with its parent (kill -9 included),
and the folder lock is the kernel's: taken while any holder lives, free once all are gone."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from app.launch.guard import InstanceLock, InstanceLocked
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux facilities")

# A parent that locks the folder, starts `sleep` through dies_with_me (passing the lock
# down), prints the child's pid and waits to be killed.
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    from app.launch.guard import InstanceLock, dies_with_me
    lock = InstanceLock.acquire(Path(sys.argv[1]), what="test parent")
    argv = ["sleep", "300"]
    child = subprocess.Popen(dies_with_me(argv) if sys.argv[2] == "guarded" else argv,
                             pass_fds=(lock.fd,))
    print(child.pid, flush=True)
    time.sleep(300)
""")


def start_parent(lock_path, mode):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(lock_path), mode],
                              stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    wait_for(lambda: child.cmdline()[:1] == ["sleep"], 10, 0.05, "the child to exec sleep")
    return parent, child


def test_a_child_started_through_dies_with_me_dies_with_a_killed_parent(tmp_path):
    parent, child = start_parent(tmp_path / "openwa.lock", "guarded")
    with pytest.raises(InstanceLocked, match=rf"in use by test parent \(pid {parent.pid}, since "):
        InstanceLock.acquire(tmp_path / "openwa.lock")
    parent.kill()
    parent.wait()
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10, 0.05,
             "the child to get its parent-death signal")
    InstanceLock.acquire(tmp_path / "openwa.lock").release()  # nobody holds it any more


def test_the_lock_stays_taken_while_a_child_that_holds_it_lives(tmp_path):
    """Without the parent-death signal the child outlives its parent: the folder stays taken,
    and the refusal says who still runs (what `openwa run` prevents for its own children)."""
    parent, child = start_parent(tmp_path / "openwa.lock", "plain")
    try:
        parent.kill()
        parent.wait()
        time.sleep(0.3)
        assert child.is_running()
        with pytest.raises(InstanceLocked) as refused:
            InstanceLock.acquire(tmp_path / "openwa.lock")
        assert str(refused.value).endswith(
            f"it has exited but processes it started still run: {child.pid}; stop it first or "
            "use another DATA_PATH")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    InstanceLock.acquire(tmp_path / "openwa.lock").release()


def test_an_inherited_descriptor_must_be_the_lock_itself(tmp_path):
    lock = InstanceLock.acquire(tmp_path / "openwa.lock", what="test")
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)
    try:
        assert InstanceLock.inherit(tmp_path / "openwa.lock", lock.fd).fd == lock.fd
        with pytest.raises(InstanceLocked, match="is not the lock"):
            InstanceLock.inherit(tmp_path / "openwa.lock", other)
    finally:
        os.close(other)
        lock.release()
