"""Checks of the monitoring configuration (marker ``monitoring``).

The files under ``monitoring/`` and ``docker/docker-compose.monitoring.yml`` are checked with
the real tools: promtool (Debian package ``prometheus``), amtool and alertmanager (Debian
package ``prometheus-alertmanager``) and yamllint (PyPI). ``scripts/ci-monitoring-deps.sh``
installs them.

This module holds what the test modules share, above all ``METRICS``: the contract of the
metric names (and their labels) that the dashboard and the alert rules may use. The
application must export exactly these; a live-scrape test checks that side.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from tests.tooling import missing, require_binary

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "monitoring"
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.monitoring.yml"

DEPS_HINT = "run scripts/ci-monitoring-deps.sh"

# --------------------------------------------------------------------------- the contract
_HTTP = {"method", "path", "status"}
_PROCESS: dict[str, set[str]] = {
    "process_resident_memory_bytes": set(),
    "process_virtual_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
    "process_open_fds": set(),
    "process_max_fds": set(),
    "process_start_time_seconds": set(),
}
_PYTHON: dict[str, set[str]] = {
    "python_info": {"implementation", "major", "minor", "patchlevel", "version"},
    "python_gc_objects_collected_total": {"generation"},
    "python_gc_objects_uncollectable_total": {"generation"},
    "python_gc_collections_total": {"generation"},
}


def _histogram(name: str, labels: set[str]) -> dict[str, set[str]]:
    return {
        f"{name}_bucket": labels | {"le"},
        f"{name}_sum": set(labels),
        f"{name}_count": set(labels),
    }


#: Series each scraped process exports: metric name -> label names (besides job/instance).
METRICS_BY_SOURCE: dict[str, dict[str, set[str]]] = {
    # job openwa: the Flask API, api:2785/api/metrics
    "api": {
        "http_requests_total": _HTTP,
        **_histogram("http_request_duration_seconds", {"method", "path"}),
        "active_sessions_total": set(),
        "connected_sessions_total": set(),
        "session_status": {"session_id", "status"},
        "message_queue_size": {"queue_name"},
        "session_hosts_live": set(),
        "session_hosts_capacity": set(),
        "sessions_without_lease": set(),
        **_PROCESS,
        **_PYTHON,
    },
    # jobs openwa-session-host (host:9810) and openwa-worker (worker:9811)
    "celery": {
        "messages_sent_total": {"session_id", "type", "status"},
        **_histogram("message_send_duration_seconds", {"session_id", "type"}),
        "webhook_deliveries_total": {"event", "status"},
        **_histogram("webhook_delivery_duration_seconds", {"event"}),
        "celery_tasks_total": {"task", "state"},
        **_histogram("celery_task_duration_seconds", {"task"}),
        **_PROCESS,
    },
    # job flower: Flower 2.2, flower:5555/metrics
    "flower": {
        "flower_worker_online": {"worker"},
        "flower_events_total": {"task", "type", "worker"},
        **_histogram("flower_task_runtime_seconds", {"task", "worker"}),
        "flower_worker_number_of_currently_executing_tasks": {"worker"},
    },
    # job node: node-exporter
    "node": {
        "node_memory_MemTotal_bytes": set(),
        "node_memory_MemAvailable_bytes": set(),
        "node_cpu_seconds_total": {"cpu", "mode"},
        "node_load1": set(),
        "node_filesystem_avail_bytes": {"device", "fstype", "mountpoint"},
        "node_filesystem_size_bytes": {"device", "fstype", "mountpoint"},
    },
    # written by Prometheus itself for every target
    "prometheus": {
        "up": set(),
        "scrape_duration_seconds": set(),
        "scrape_samples_scraped": set(),
    },
}

#: Label values the application promises (label -> allowed values), per metric.
LABEL_VALUES: dict[tuple[str, str], set[str]] = {
    ("messages_sent_total", "status"): {"sent", "failed"},
    ("webhook_deliveries_total", "status"): {"success", "failed", "retry", "dead"},
    ("celery_tasks_total", "state"): {"succeeded", "failed", "retried"},
    (
        "session_status",
        "status",
    ): {"created", "initializing", "qr_ready", "authenticating", "ready", "disconnected", "failed"},
}

#: Labels every scraped series carries.
TARGET_LABELS = {"job", "instance"}

#: metric name -> label names, over every source.
METRICS: dict[str, set[str]] = {}
for _series in METRICS_BY_SOURCE.values():
    for _name, _labels in _series.items():
        METRICS.setdefault(_name, set()).update(_labels)

#: The scrape jobs of monitoring/prometheus.yml: job -> (target host, port, metrics path).
SCRAPE_JOBS: dict[str, tuple[str, int, str]] = {
    "openwa": ("api", 2785, "/api/metrics"),
    "openwa-session-host": ("host", 9810, "/metrics"),
    "openwa-worker": ("worker", 9811, "/metrics"),
    "flower": ("flower", 5555, "/metrics"),
    "node": ("node-exporter", 9100, "/metrics"),
    "prometheus": ("localhost", 9090, "/metrics"),
}

# --------------------------------------------------------------------------- helpers


def load_yaml(path: Path) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the environment
        missing(f"PyYAML not installed: pip install -r requirements/test.txt or {DEPS_HINT}")
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def dump_yaml(data: Any, path: Path) -> None:
    import yaml  # type: ignore[import-untyped]

    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def promtool() -> str:
    return require_binary("promtool", f"Debian package prometheus; {DEPS_HINT}")


def amtool() -> str:
    return require_binary("amtool", f"Debian package prometheus-alertmanager; {DEPS_HINT}")


def run(
    cmd: list[str], cwd: Path | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def check_rules(rule_file: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` on ``rule_file``: parses and type-checks every expression."""
    return run([promtool(), "check", "rules", str(rule_file)], cwd=rule_file.parent)


# --------------------------------------------------------------------------- PromQL names

#: Grafana's macros, replaced by plain durations before an expression goes to promtool.
GRAFANA_MACROS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${__rate_interval}": "1m",
    "${__interval}": "1m",
    "${__range}": "1h",
}

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan", "atan2",
}
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
)
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


def expand_grafana_macros(expr: str) -> str:
    for macro in sorted(GRAFANA_MACROS, key=len, reverse=True):
        expr = expr.replace(macro, GRAFANA_MACROS[macro])
    return expr


def promql_references(expr: str) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """Return (metric names, {metric: label names it is matched on}, grouping labels).

    A small lexer, enough for the expressions of this repository (no string arguments, no
    metric names in __name__ matchers); its correctness is itself tested.
    """
    expr = expand_grafana_macros(expr)
    metrics: set[str] = set()
    matched: dict[str, set[str]] = {}
    for name, body in _SELECTOR.findall(expr):
        labels = {m[0] for m in _MATCHER.findall(body)}
        if name:
            metrics.add(name)
            matched.setdefault(name, set()).update(labels)
    grouping: set[str] = set()
    for _kw, body in _GROUPING.findall(expr):
        grouping.update(x.strip() for x in body.split(",") if x.strip())
    rest = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", expr)
    rest = _GROUPING.sub(" ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', " ", rest)
    for name in _IDENT.findall(rest):
        if name not in _KEYWORDS:
            metrics.add(name)
    return metrics, matched, grouping


def contract_violations(expr: str) -> list[str]:
    """Names and labels of ``expr`` that are not in the contract, as messages."""
    problems = []
    metrics, matched, grouping = promql_references(expr)
    allowed_labels = set(TARGET_LABELS)
    for name in sorted(metrics):
        if name not in METRICS:
            problems.append(f"unknown metric {name!r}")
            continue
        allowed_labels |= METRICS[name]
    for name, labels in matched.items():
        for label in sorted(labels - METRICS.get(name, set()) - TARGET_LABELS):
            problems.append(f"{name} has no label {label!r}")
    for label in sorted(grouping - allowed_labels):
        problems.append(f"grouping label {label!r} is on none of {sorted(metrics)}")
    return problems


def label_value_violations(expr: str) -> list[str]:
    """Equality matchers whose value the application never emits (e.g. status="sucess")."""
    problems = []
    for name, body in _SELECTOR.findall(expand_grafana_macros(expr)):
        for label, op, value in _MATCHER.findall(body):
            allowed = LABEL_VALUES.get((name, label))
            if allowed is None or op not in ("=", "!="):
                continue
            if value not in allowed:
                problems.append(f'{name}{{{label}{op}"{value}"}}: not one of {sorted(allowed)}')
    return problems
