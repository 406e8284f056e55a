"""SESSION_HOST_NAME without ``@`` (issue 17 item 2): Celery would run the host as
``celery@hostA`` while start tasks went to ``host.hostA``; it is completed as ``host@hostA``
with one line saying so, and a malformed name is refused at start with one line."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from app.config import Config, ConfigError
from app.launch.roles import host_name_note, host_node_name
from tests.integration.conftest import ROOT, wait_for


@pytest.mark.parametrize("given, node", [("hostA", "host@hostA"), ("host1@box", "host1@box"),
                                         (" hostB ", "host@hostB")])
def test_a_host_name_is_completed_to_name_at_host(given, node):
    config = Config(host_name=given)
    assert host_node_name(config) == node
    note = host_name_note(config)
    assert (note is None) == ("@" in given)
    if note:
        assert note == (f"SESSION_HOST_NAME={given.strip()} has no '@': the session host runs "
                        f"as {node} (set it to name@host to choose both parts)")


@pytest.mark.parametrize("given", ["@box", "host@", "a@b@c", "host A"])
def test_a_malformed_host_name_is_refused(given):
    with pytest.raises(ConfigError, match="is not a node name: use name@host"):
        host_node_name(Config(host_name=given))


@pytest.mark.integration
def test_a_host_named_without_at_receives_its_sessions(platform):
    host = platform.start_host("hostA", wait=False)
    wait_for(lambda: platform.host_live("host@hostA") or not host.alive(), 60, 0.1, "host@hostA")
    assert host.alive(), host.output()[-3000:]
    assert ("openwa: SESSION_HOST_NAME=hostA has no '@': the session host runs as host@hostA"
            in host.output())
    session = platform.create_ready_session("named")
    assert session["status"] == "ready"
    assert platform.session_row("named").lease_holder == "host@hostA"


@pytest.mark.integration
def test_a_malformed_host_name_stops_the_host_with_one_line(platform_env):
    result = subprocess.run([sys.executable, "-m", "app", "host"],
                            env={**platform_env, "SESSION_HOST_NAME": "a@b@c"}, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "openwa: configuration error: SESSION_HOST_NAME='a@b@c' is not a node name: use "
        f"name@host (one '@', no spaces), e.g. host@{socket.gethostname()}"]
