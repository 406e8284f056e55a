"""monitoring/loki.yml and monitoring/promtail.yml: yamllint, then their structure.

Neither Loki nor Promtail ships in a package registry this project uses, so their files are
checked by yamllint (PyPI) and by assertions on the settings the stack depends on. yamllint
also covers the other YAML files of the monitoring stack.
"""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from tests.monitoring import COMPOSE_FILE, DEPS_HINT, MONITORING, load_yaml
from tests.tooling import missing

pytestmark = pytest.mark.monitoring

LOKI_YML = MONITORING / "loki.yml"
PROMTAIL_YML = MONITORING / "promtail.yml"
LOG_FIELDS = {
    "timestamp", "level", "logger", "message", "service", "version",
    "request_id", "session_id", "task_id",
}
HIGH_CARDINALITY = {"request_id", "session_id", "task_id"}

YAMLLINT_CONFIG = """
extends: default
rules:
  line-length:
    max: 100
    allow-non-breakable-inline-mappings: true
"""

LINTED = [
    LOKI_YML,
    PROMTAIL_YML,
    MONITORING / "prometheus.yml",
    MONITORING / "alerts.yml",
    MONITORING / "alerts.test.yml",
    MONITORING / "alertmanager.yml",
    MONITORING / "grafana" / "provisioning" / "datasources" / "datasources.yml",
    MONITORING / "grafana" / "provisioning" / "dashboards" / "dashboards.yml",
    COMPOSE_FILE,
]


@pytest.fixture(scope="module")
def loki() -> dict:
    return load_yaml(LOKI_YML)


@pytest.fixture(scope="module")
def promtail() -> dict:
    return load_yaml(PROMTAIL_YML)


@pytest.fixture(scope="module")
def compose_services() -> dict:
    return load_yaml(COMPOSE_FILE)["services"]


def _yamllint(*args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("yamllint") is None:
        missing(f"yamllint not installed: pip install -r requirements/test.txt or {DEPS_HINT}")
    return subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-d", YAMLLINT_CONFIG, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("path", LINTED, ids=lambda p: p.name)
def test_yamllint(path):
    result = _yamllint(str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_catches_problems(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("---\nkey: 1\nkey: 2\n")  # duplicate key: a silent override otherwise
    assert _yamllint(str(bad)).returncode != 0


# ------------------------------------------------------------------------- Loki


def test_loki_single_binary_without_auth(loki):
    assert loki["auth_enabled"] is False
    assert loki["server"]["http_listen_port"] == 3100
    assert loki["common"]["replication_factor"] == 1
    assert loki["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert "target" not in loki or loki["target"] == "all"


def test_loki_schema_is_tsdb_v13_on_filesystem(loki):
    configs = loki["schema_config"]["configs"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(configs[-1]["from"]))
    latest = configs[-1]
    assert latest["store"] == "tsdb"
    assert latest["schema"] == "v13"
    assert latest["object_store"] == "filesystem"
    assert latest["index"]["period"] == "24h", "TSDB and the compactor want daily tables"
    shipper = loki["storage_config"]["tsdb_shipper"]
    assert shipper["active_index_directory"] and shipper["cache_location"]
    assert loki["common"]["storage"]["filesystem"]["chunks_directory"]


def test_loki_retention(loki):
    compactor = loki["compactor"]
    assert compactor["retention_enabled"] is True
    # Loki 3 refuses retention without a store for delete requests
    assert compactor["delete_request_store"] == "filesystem"
    period = loki["limits_config"]["retention_period"]
    hours = int(re.fullmatch(r"(\d+)h", period).group(1))
    assert hours >= 24 and hours % 24 == 0, "retention works in whole index periods (days)"
    assert loki["limits_config"]["allow_structured_metadata"] is True


def test_loki_keeps_all_data_on_its_volume(loki, compose_services):
    """Every directory Loki writes is under the path the compose file puts on a volume."""
    service = compose_services["loki"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    data_mount = next(t for t, s in mounts.items() if not s.startswith((".", "/")))
    paths = [
        loki["common"]["path_prefix"],
        loki["common"]["storage"]["filesystem"]["chunks_directory"],
        loki["common"]["storage"]["filesystem"]["rules_directory"],
        loki["storage_config"]["tsdb_shipper"]["active_index_directory"],
        loki["storage_config"]["tsdb_shipper"]["cache_location"],
        loki["compactor"]["working_directory"],
    ]
    for path in paths:
        assert path == data_mount or path.startswith(data_mount + "/"), path
    config_path = next(t for t, s in mounts.items() if s == "../monitoring/loki.yml")
    assert f"-config.file={config_path}" in service["command"]


# ------------------------------------------------------------------------- Promtail


def test_promtail_pushes_to_loki(promtail):
    assert [c["url"] for c in promtail["clients"]] == ["http://loki:3100/loki/api/v1/push"]


def test_promtail_positions_persist(promtail, compose_services):
    service = compose_services["promtail"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    positions_dir = promtail["positions"]["filename"].rsplit("/", 1)[0]
    assert positions_dir in mounts, "positions on a volume: no re-shipping after a restart"
    config_path = next(t for t, s in mounts.items() if s == "../monitoring/promtail.yml")
    assert f"-config.file={config_path}" in service["command"]


def test_promtail_reads_docker_container_logs(promtail, compose_services):
    [job] = promtail["scrape_configs"]
    [sd] = job["docker_sd_configs"]
    socket_path = sd["host"].removeprefix("unix://")
    mounts = compose_services["promtail"]["volumes"]
    assert f"{socket_path}:{socket_path}:ro" in mounts, "the Docker socket is mounted read-only"
    targets = {r["target_label"] for r in job["relabel_configs"]}
    assert {"container", "compose_service", "service"} <= targets


def _stages(promtail: dict) -> list[tuple[str, dict]]:
    [job] = promtail["scrape_configs"]
    out = []
    for stage in job["pipeline_stages"]:
        [(kind, body)] = stage.items()
        out.append((kind, body))
    return out


def test_promtail_pipeline_parses_our_json_logs(promtail):
    stages = _stages(promtail)
    kinds = [k for k, _ in stages]
    assert kinds[0] == "json", "the line is parsed first; every later stage reads its fields"
    expressions = stages[0][1]["expressions"]
    assert set(expressions) == LOG_FIELDS
    for name, path in expressions.items():
        assert (path or name) == name, "fields are read from the top level of the object"
    assert "output" not in kinds, "the JSON line is kept whole, for `| json` in LogQL"
    [timestamp] = [b for k, b in stages if k == "timestamp"]
    assert timestamp["source"] == "timestamp"
    assert timestamp["format"] in ("RFC3339", "RFC3339Nano")


def test_promtail_labels_keep_cardinality_low(promtail):
    stages = _stages(promtail)
    labels = set()
    for kind, body in stages:
        if kind == "labels":
            labels |= set(body)
    assert labels == {"level", "service"}
    [metadata] = [b for k, b in stages if k == "structured_metadata"]
    assert HIGH_CARDINALITY <= set(metadata), "still filterable, as structured metadata"
    assert not HIGH_CARDINALITY & labels
    # the level label has one spelling: lower-cased before it becomes a label
    kinds = [k for k, _ in stages]
    [template] = [b for k, b in stages if k == "template"]
    assert template["source"] == "level" and "ToLower" in template["template"]
    assert kinds.index("template") < kinds.index("labels")
