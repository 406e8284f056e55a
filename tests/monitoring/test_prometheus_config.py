"""monitoring/prometheus.yml with promtool, and how the monitoring compose file wires it."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.monitoring import (
    COMPOSE_FILE,
    DOCKER,
    MONITORING,
    SCRAPE_JOBS,
    dump_yaml,
    load_yaml,
    promtool,
    run,
)

pytestmark = pytest.mark.monitoring

PROMETHEUS_YML = MONITORING / "prometheus.yml"
TOKEN_PATH = "/etc/prometheus/metrics_token"
MONITORING_SERVICES = {"prometheus", "grafana", "loki", "promtail", "alertmanager", "node-exporter"}


def _copy_config(tmp_path: Path) -> Path:
    """prometheus.yml and the alerts.yml it names, side by side as in the container."""
    shutil.copy(PROMETHEUS_YML, tmp_path / "prometheus.yml")
    shutil.copy(MONITORING / "alerts.yml", tmp_path / "alerts.yml")
    return tmp_path / "prometheus.yml"


def _targets(job: dict) -> list[tuple[str, int]]:
    """(host, port) of a job's static or DNS targets."""
    out = []
    for sc in job.get("static_configs", []):
        for target in sc["targets"]:
            host, _, port = target.rpartition(":")
            out.append((host, int(port)))
    for sd in job.get("dns_sd_configs", []):
        assert sd.get("type", "SRV") == "A", "SRV records need no port; compose gives A records"
        for name in sd["names"]:
            out.append((name, int(sd["port"])))
    return out


@pytest.fixture(scope="module")
def config() -> dict:
    return load_yaml(PROMETHEUS_YML)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


def test_promtool_check_config(tmp_path):
    cfg = _copy_config(tmp_path)
    result = run([promtool(), "check", "config", str(cfg)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # the rule file is found and loaded with it
    assert re.search(r"SUCCESS: \d+ rules found", result.stdout), result.stdout


def test_promtool_rejects_a_broken_config(tmp_path):
    """The check above means something: promtool does fail on a bad file."""
    cfg = _copy_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("scrape_interval: 15s", "scrape_interval: soon"))
    result = run([promtool(), "check", "config", str(cfg)], cwd=tmp_path)
    assert result.returncode != 0


def test_bearer_token_variant_is_valid(tmp_path, config):
    """The commented `authorization` block, once enabled, is a valid config."""
    text = PROMETHEUS_YML.read_text()
    assert f"credentials_file: {TOKEN_PATH}" in text, "the commented token block is documented"
    token = tmp_path / "metrics_token"
    token.write_text("s3cret\n")
    enabled = dict(config)
    jobs = [dict(j) for j in config["scrape_configs"]]
    for job in jobs:
        if job["job_name"] == "openwa":
            job["authorization"] = {"type": "Bearer", "credentials_file": str(token)}
    enabled["scrape_configs"] = jobs
    _copy_config(tmp_path)
    dump_yaml(enabled, tmp_path / "prometheus.yml")
    result = run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_global_settings(config):
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["alerts.yml"]
    ams = config["alerting"]["alertmanagers"]
    targets = [t for am in ams for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]


def test_scrape_jobs(config):
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == set(SCRAPE_JOBS), "one job per exporter, named as the alerts expect"
    for name, (host, port, path) in SCRAPE_JOBS.items():
        job = jobs[name]
        assert _targets(job) == [(host, port)], name
        assert job.get("metrics_path", "/metrics") == path, name
        # no job overrides the global interval: rates and `for:` clauses assume 15s
        assert "scrape_interval" not in job, name


def test_the_alert_jobs_exist(config):
    """Every job named in alerts.yml is scraped."""
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    alerts = (MONITORING / "alerts.yml").read_text()
    named = set(re.findall(r'job="([^"]+)"', alerts))
    for pattern in re.findall(r'job=~"([^"]+)"', alerts):
        named.update(pattern.split("|"))
    assert named and named <= jobs


# ------------------------------------------------------------------- the compose file


def _bind_mounts(service: dict) -> list[tuple[str, str]]:
    mounts = []
    for vol in service.get("volumes", []):
        parts = vol.split(":")
        source, target = parts[0], parts[1]
        mounts.append((source, target))
    return mounts


def test_compose_services_and_network(compose):
    services = compose["services"]
    assert set(services) == MONITORING_SERVICES
    network = compose["networks"]["openwa"]
    assert network.get("external") is True and network.get("name") == "openwa"
    for name, service in services.items():
        assert "openwa" in service.get("networks", []), f"{name} must join the app network"
        image, _, tag = service["image"].rpartition(":")
        assert image and tag and tag != "latest", f"{name}: pin the image tag"
        assert service.get("restart") == "unless-stopped", name


def test_compose_mounts_exist(compose):
    """Every ../monitoring path the stack mounts is in the repository."""
    seen = 0
    for name, service in compose["services"].items():
        for source, _target in _bind_mounts(service):
            if source.startswith("."):
                seen += 1
                assert (DOCKER / source).resolve().exists(), f"{name}: {source} missing"
    assert seen >= 7


def test_compose_prometheus_service(compose):
    prom = compose["services"]["prometheus"]
    mounts = dict((t, s) for s, t in _bind_mounts(prom))
    assert mounts["/etc/prometheus/prometheus.yml"] == "../monitoring/prometheus.yml"
    # rule_files is relative to the config file: alerts.yml must sit beside it
    assert mounts["/etc/prometheus/alerts.yml"] == "../monitoring/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert any(c.startswith("--storage.tsdb.retention.time=") for c in prom["command"])
    assert any(t == "/prometheus" for _s, t in _bind_mounts(prom)), "TSDB on a volume"
    # the token file the commented authorization block reads is documented in compose
    assert TOKEN_PATH in COMPOSE_FILE.read_text()


def test_compose_alertmanager_writes_the_slack_url_file(compose):
    am = compose["services"]["alertmanager"]
    mounts = dict((t, s) for s, t in _bind_mounts(am))
    assert mounts["/etc/alertmanager/alertmanager.yml"] == "../monitoring/alertmanager.yml"
    url_file = load_yaml(MONITORING / "alertmanager.yml")["global"]["slack_api_url_file"]
    script = " ".join(am["command"])
    assert f"> {url_file}" in script and "SLACK_WEBHOOK_URL" in script
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in script
    assert "SLACK_WEBHOOK_URL" in am["environment"]
