"""The `openwa` command: key management from the shell, and bad configuration."""
from __future__ import annotations

import os
import subprocess
import sys

from flask_migrate import upgrade

from app.cli import keys_create, keys_list, keys_revoke
from tests.conftest import auth


def invoke(app, command, *args):
    return app.test_cli_runner().invoke(command, list(args))


def test_keys_create_list_and_revoke(app, client):
    with app.app_context():
        upgrade()
    created = invoke(app, keys_create, "--name", "ops", "--role", "viewer", "--ip", "10.0.0.0/8")
    assert created.exit_code == 0, created.output
    key_id, role, raw = created.output.strip().split("\t")
    assert role == "viewer" and raw.startswith("owa_k1_")
    listed = invoke(app, keys_list)
    assert key_id in listed.output and raw not in listed.output
    assert client.get("/api/sessions", headers=auth(raw),
                      environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    revoked = invoke(app, keys_revoke, key_id)
    assert revoked.exit_code == 0
    assert client.get("/api/sessions", headers=auth(raw),
                      environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 401


def test_a_bad_variable_stops_start_up_with_one_line_naming_it(tmp_path):
    env = {**os.environ, "PORT": "abc", "DATA_PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "app", "api"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["openwa: configuration error: PORT='abc' is not a whole number"]
