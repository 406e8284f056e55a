"""monitoring/alerts.yml, its unit tests and monitoring/alertmanager.yml, with the real tools."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib import request as urlrequest

import pytest

from tests.monitoring import (
    DEPS_HINT,
    MONITORING,
    amtool,
    check_rules,
    contract_violations,
    dump_yaml,
    label_value_violations,
    load_yaml,
    promql_references,
    promtool,
    run,
)
from tests.tooling import missing

pytestmark = pytest.mark.monitoring

ALERTS_YML = MONITORING / "alerts.yml"
ALERTS_TEST_YML = MONITORING / "alerts.test.yml"
ALERTMANAGER_YML = MONITORING / "alertmanager.yml"

#: section 10.6 of the infrastructure document, then the Celery/lease additions
REQUIRED_ALERTS = {
    "HighErrorRate": "critical",
    "HighResponseTime": "warning",
    "SessionDisconnected": "warning",
    "HighMemoryUsage": "warning",
    "WebhookDeliveryFailures": "warning",
    "ServiceDown": "critical",
    "CeleryWorkerOffline": "warning",
    "QueueBacklogGrowing": "warning",
    "TaskFailureRatio": "warning",
    "SessionWithoutLiveLease": "critical",
}
SEVERITY_RECEIVER = {"critical": "slack-critical", "warning": "slack-warnings"}


def _rules() -> list[dict]:
    return [r for g in load_yaml(ALERTS_YML)["groups"] for r in g["rules"]]


def _alert_tests() -> list[dict]:
    return [t for test in load_yaml(ALERTS_TEST_YML)["tests"] for t in test["alert_rule_test"]]


# ------------------------------------------------------------------------- rules


def test_promtool_check_rules():
    result = check_rules(ALERTS_YML)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(REQUIRED_ALERTS)} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests_pass():
    """promtool test rules: every firing and every silent case of alerts.test.yml."""
    result = run([promtool(), "test", "rules", str(ALERTS_TEST_YML)], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_can_fail(tmp_path):
    """A wrong expectation makes `promtool test rules` fail: the suite is not vacuous."""
    shutil.copy(ALERTS_YML, tmp_path / "alerts.yml")
    text = ALERTS_TEST_YML.read_text().replace("severity: critical", "severity: info", 1)
    (tmp_path / "alerts.test.yml").write_text(text)
    result = run([promtool(), "test", "rules", "alerts.test.yml"], cwd=tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_required_alerts_and_severities():
    rules = {r["alert"]: r for r in _rules()}
    assert set(rules) == set(REQUIRED_ALERTS)
    for name, severity in REQUIRED_ALERTS.items():
        assert rules[name]["labels"]["severity"] == severity, name


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_rule_shape(rule):
    assert rule["labels"]["severity"] in SEVERITY_RECEIVER
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description"}
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert "for" in rule, "every alert waits before firing (no flapping on one scrape)"


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_rule_uses_only_contract_metrics(rule):
    assert contract_violations(rule["expr"]) == []
    assert label_value_violations(rule["expr"]) == []


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: r["alert"])
def test_ratios_are_guarded(rule):
    """A division by a rate or increase filters its denominator (`> 0`): no NaN on no traffic."""
    expr = " ".join(rule["expr"].split())
    if "/" not in expr:
        return
    denominator = expr.split("/", 1)[1].strip()
    if denominator.startswith("(") and ("rate(" in denominator or "increase(" in denominator):
        assert ") > 0)" in denominator, f"{rule['alert']}: guard the denominator with > 0"


def test_every_alert_fires_and_stays_silent_in_unit_tests():
    names = {r["alert"] for r in _rules()}
    firing: set[str] = set()
    silent: set[str] = set()
    for case in _alert_tests():
        assert case["alertname"] in names, f"test for unknown alert {case['alertname']}"
        (firing if case.get("exp_alerts") else silent).add(case["alertname"])
        for exp in case.get("exp_alerts") or []:
            assert exp["exp_labels"]["severity"] == REQUIRED_ALERTS[case["alertname"]]
            assert set(exp["exp_annotations"]) >= {"summary", "description"}
    assert firing == names, f"never shown firing: {sorted(names - firing)}"
    assert silent == names, f"never shown silent: {sorted(names - silent)}"


def test_unit_test_series_use_contract_metrics():
    for test in load_yaml(ALERTS_TEST_YML)["tests"]:
        for series in test["input_series"]:
            assert contract_violations(series["series"]) == [], series["series"]
            assert label_value_violations(series["series"]) == [], series["series"]


@pytest.mark.parametrize(
    "expr, metrics, matched, grouping",
    [
        (
            'sum by (le, path) (rate(http_request_duration_seconds_bucket{method="GET"}'
            "[$__rate_interval])) / ignoring(path) group_left sum(up) > bool 1e3",
            {"http_request_duration_seconds_bucket", "up"},
            {"http_request_duration_seconds_bucket": {"method"}},
            {"le", "path"},
        ),
        ("absent(up{job=\"x\"}) or vector(0) * node_load1 offset 5m", {"up", "node_load1"},
         {"up": {"job"}}, set()),
    ],
)
def test_promql_reference_lexer(expr, metrics, matched, grouping):
    """The lexer the contract checks rely on finds names, matchers and grouping labels."""
    got_metrics, got_matched, got_grouping = promql_references(expr)
    assert got_metrics == metrics
    assert got_matched == matched
    assert got_grouping == grouping
    assert contract_violations("rate(no_such_metric_total[5m])") == [
        "unknown metric 'no_such_metric_total'"
    ]
    assert contract_violations('sum by (queue) (message_queue_size{queue_nam="x"})')


# ------------------------------------------------------------------------- Alertmanager


def test_amtool_check_config():
    result = run([amtool(), "check-config", str(ALERTMANAGER_YML)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    "labels, receiver",
    [
        (["severity=critical", "alertname=ServiceDown"], "slack-critical"),
        (["severity=warning", "alertname=HighMemoryUsage"], "slack-warnings"),
        (["alertname=Unlabelled"], "slack-notifications"),
    ],
)
def test_amtool_routes(labels, receiver):
    result = run(
        [amtool(), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}", *labels]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_severity_has_a_route():
    for severity in {r["labels"]["severity"] for r in _rules()}:
        result = run(
            [
                amtool(), "config", "routes", "test", f"--config.file={ALERTMANAGER_YML}",
                f"severity={severity}",
            ]
        )
        assert result.stdout.split() == [SEVERITY_RECEIVER[severity]], severity


def test_alertmanager_secrets_and_inhibition():
    cfg = load_yaml(ALERTMANAGER_YML)
    text = ALERTMANAGER_YML.read_text()
    assert cfg["global"]["slack_api_url_file"].startswith("/")
    assert "hooks.slack.com" not in text, "no webhook URL in the repository"
    assert "slack_api_url:" not in text
    assert cfg["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname"],
        }
    ]


# ------------------------------------------------------------------------- end to end


class _FakeSlack(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alertmanager_binary() -> str:
    for name in ("alertmanager", "prometheus-alertmanager"):
        path = shutil.which(name)
        if path:
            return path
    missing(f"alertmanager not found: Debian package prometheus-alertmanager; {DEPS_HINT}")
    raise AssertionError  # unreachable


def _post_json(url: str, payload) -> None:
    req = urlrequest.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urlrequest.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.mark.slow
def test_alertmanager_delivers_to_slack_by_severity_and_inhibits(tmp_path: Path):
    """Real Alertmanager with our config: reads the URL file, routes, inhibits, posts."""
    binary = _alertmanager_binary()
    _FakeSlack.received = []
    slack = HTTPServer(("127.0.0.1", 0), _FakeSlack)
    threading.Thread(target=slack.serve_forever, daemon=True).start()
    url_file = tmp_path / "slack_webhook_url"
    url_file.write_text(f"http://127.0.0.1:{slack.server_port}/services/T000/B000/XXXX")
    cfg = load_yaml(ALERTMANAGER_YML)
    cfg["global"]["slack_api_url_file"] = str(url_file)
    for route in [cfg["route"], *cfg["route"]["routes"]]:
        route["group_wait"] = "1s"
    dump_yaml(cfg, tmp_path / "alertmanager.yml")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urlrequest.urlopen(f"{base}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "alertmanager did not become ready"
            time.sleep(0.2)

        def alert(name, severity, **labels):
            return {
                "labels": {"alertname": name, "severity": severity, **labels},
                "annotations": {"summary": f"{name} summary", "description": f"{name} desc"},
            }

        _post_json(
            f"{base}/api/v2/alerts",
            [
                alert("ServiceDown", "critical", job="openwa"),
                # same name as the critical one: inhibited
                alert("ServiceDown", "warning", job="openwa"),
                alert("HighMemoryUsage", "warning", instance="node-exporter:9100"),
            ],
        )
        deadline = time.monotonic() + 30
        while len(_FakeSlack.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # would an inhibited notification still come?
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        slack.shutdown()
        slack.server_close()

    by_channel: dict[str, list[str]] = {}
    for payload in _FakeSlack.received:
        for att in payload["attachments"]:
            by_channel.setdefault(payload["channel"], []).append(att["title"] + att["text"])
    assert set(by_channel) == {"#openwa-critical", "#openwa-alerts"}, _FakeSlack.received
    critical = " ".join(by_channel["#openwa-critical"])
    warnings = " ".join(by_channel["#openwa-alerts"])
    assert "CRITICAL" in critical and "ServiceDown summary" in critical
    assert "WARNING" in warnings and "HighMemoryUsage summary" in warnings
    assert "ServiceDown" not in warnings, "the warning was not inhibited by the critical alert"
    assert len(_FakeSlack.received) == 2
