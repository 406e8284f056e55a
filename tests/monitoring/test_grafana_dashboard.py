"""monitoring/grafana: the OpenWA dashboard and the provisioning that loads it."""
from __future__ import annotations

import json
import re
from itertools import combinations

import pytest

from tests.monitoring import (
    COMPOSE_FILE,
    MONITORING,
    check_rules,
    contract_violations,
    dump_yaml,
    expand_grafana_macros,
    label_value_violations,
    load_yaml,
)

pytestmark = pytest.mark.monitoring

GRAFANA = MONITORING / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "openwa.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"

#: the eight panels of section 10.6, then the Celery / session-host additions
REQUIRED_PANELS = {
    "Active Sessions",
    "Messages Sent (24h)",
    "Error Rate",
    "Request Rate",
    "Response Time (p95)",
    "Messages by Type",
    "Webhook Delivery Success Rate",
    "Memory Usage",
    "Celery Tasks by State",
    "Celery Task Duration (p95)",
    "Queue Sizes",
    "Session Hosts",
    "Sessions Without Live Lease",
    "Sessions by Status",
    "Message Send Duration (p95)",
}
GRID_WIDTH = 24
LOKI_LABELS = {"level", "service", "container", "compose_project", "compose_service", "stream",
               "job"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def datasource_uids() -> dict[str, str]:
    """uid -> type of the provisioned data sources."""
    return {ds["uid"]: ds["type"] for ds in load_yaml(DATASOURCES)["datasources"]}


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return out


def _prometheus_targets(dashboard: dict) -> list[tuple[dict, dict]]:
    return [
        (p, t)
        for p in _panels(dashboard)
        for t in p.get("targets", [])
        if (t.get("datasource") or p.get("datasource") or {}).get("type") == "prometheus"
    ]


def test_dashboard_identity(dashboard):
    assert dashboard["uid"] == "openwa-main"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard.get("id") is None, "provisioned dashboards carry no database id"
    assert dashboard["time"]["from"].startswith("now-")


def test_required_panels(dashboard):
    titles = [p["title"] for p in _panels(dashboard) if p["type"] != "row"]
    assert REQUIRED_PANELS <= set(titles), sorted(REQUIRED_PANELS - set(titles))
    assert len(titles) == len(set(titles)), "panel titles are unique"


def test_panel_ids_and_ref_ids_unique(dashboard):
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        if panel["type"] != "row":
            assert refs, f"{panel['title']} has no query"


def test_grid_positions_fit_and_do_not_overlap(dashboard):
    boxes = []
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), panel["title"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, panel["title"]
        assert g["x"] + g["w"] <= GRID_WIDTH, f"{panel['title']} is wider than the grid"
        if panel["type"] == "row":
            assert (g["x"], g["w"], g["h"]) == (0, GRID_WIDTH, 1), panel["title"]
        boxes.append((panel["title"], g))
    for (ta, a), (tb, b) in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{ta!r} overlaps {tb!r}"


def test_datasources_referenced_by_provisioned_uid(dashboard, datasource_uids):
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        refs = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
        for ref in refs:
            assert isinstance(ref, dict), f"{panel['title']}: refer to data sources by uid"
            assert datasource_uids.get(ref["uid"]) == ref["type"], (panel["title"], ref)


def test_every_prometheus_expression_parses(dashboard, tmp_path):
    """Each query, Grafana macros expanded, as a recording rule through `promtool check rules`."""
    targets = _prometheus_targets(dashboard)
    assert len(targets) >= len(REQUIRED_PANELS)
    rules = [
        {"record": f"dashboard:panel_{p['id']}_{t['refId'].lower()}",
         "expr": expand_grafana_macros(t["expr"])}
        for p, t in targets
    ]
    rule_file = tmp_path / "dashboard_rules.yml"
    dump_yaml({"groups": [{"name": "dashboard", "rules": rules}]}, rule_file)
    result = check_rules(rule_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_parse_check_rejects_bad_promql(tmp_path):
    rule_file = tmp_path / "bad.yml"
    dump_yaml(
        {"groups": [{"name": "bad", "rules": [
            {"record": "dashboard:bad", "expr": "sum(rate(http_requests_total[5m])"},
        ]}]},
        rule_file,
    )
    assert check_rules(rule_file).returncode != 0
    dump_yaml(
        {"groups": [{"name": "bad", "rules": [
            # a type error, not a syntax error: rate() of an instant vector
            {"record": "dashboard:bad", "expr": "rate(http_requests_total)"},
        ]}]},
        rule_file,
    )
    assert check_rules(rule_file).returncode != 0


def test_only_contract_metrics(dashboard):
    problems = {}
    for panel, target in _prometheus_targets(dashboard):
        found = contract_violations(target["expr"]) + label_value_violations(target["expr"])
        if found:
            problems[f"{panel['title']}/{target['refId']}"] = found
    assert problems == {}


def test_loki_queries_use_promtail_labels(dashboard):
    loki = [
        (p, t) for p in _panels(dashboard) for t in p.get("targets", [])
        if t["datasource"]["type"] == "loki"
    ]
    assert loki, "the dashboard shows logs from Loki"
    for panel, target in loki:
        selector = re.match(r"\s*\{([^}]*)\}", target["expr"])
        assert selector, f"{panel['title']}: a LogQL query starts with a stream selector"
        labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", selector.group(1)))
        assert labels and labels <= LOKI_LABELS, (panel["title"], labels)


# ------------------------------------------------------------------------- provisioning


def test_datasource_provisioning(datasource_uids):
    doc = load_yaml(DATASOURCES)
    assert doc["apiVersion"] == 1
    by_uid = {ds["uid"]: ds for ds in doc["datasources"]}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["loki"]["type"] == "loki"
    assert by_uid["loki"]["url"] == "http://loki:3100"
    assert [ds["uid"] for ds in doc["datasources"] if ds.get("isDefault")] == ["prometheus"]
    for ds in doc["datasources"]:
        assert ds["access"] == "proxy", ds["name"]


def test_dashboard_provider_points_at_the_mounted_folder():
    doc = load_yaml(PROVIDERS)
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path == "/var/lib/grafana/dashboards"
    grafana = load_yaml(COMPOSE_FILE)["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts[path] == "../monitoring/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "../monitoring/grafana/provisioning"
