"""The Grafana dashboard (docker/grafana/dashboards/phq.json) queries only what a real server
exposes: every metric, label and `label="value"` its PromQL names, after one prediction."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import ANSWERS
from tests.conftest import ROOT

DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "phq.json"
METRIC = re.compile(r"\bphq_[A-Za-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(panel title, expression, legend format) of every query in the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"], target.get("legendFormat", ""))
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def exposed_series(metrics_text: str) -> dict[str, list[dict[str, str]]]:
    """Label sets of every sample the server exposes, by sample name (histograms appear as
    their _bucket, _sum and _count samples, counters as _total, as PromQL sees them)."""
    series: dict[str, list[dict[str, str]]] = defaultdict(list)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            series[sample.name].append(dict(sample.labels))
    return series


def test_dashboard_queries_only_metrics_the_server_exposes(client: httpx.Client) -> None:
    # one text-only prediction, so that the labelled series of a prediction exist
    answer = client.post("/predict", data={"transcript_text": " ".join(ANSWERS)})
    assert answer.status_code == 200, answer.text
    series = exposed_series(client.get("/metrics").text)

    queries = dashboard_queries()
    assert len(queries) >= 15
    used_metrics: set[str] = set()
    for title, expr, legend in queries:
        names = set(METRIC.findall(expr))
        assert names, f"{title}: no phq_ metric in {expr!r}"
        missing = names - set(series)
        assert not missing, f"{title}: {sorted(missing)} not in /metrics"
        used_metrics |= names

        label_sets = [labels for name in names for labels in series[name]]
        known_labels = {label for labels in label_sets for label in labels}
        grouped = {label.strip() for group in GROUPING.findall(expr) for label in group.split(",") if label.strip()}
        matched = [m for selector in SELECTOR.findall(expr) for m in MATCHER.findall(selector)]
        for label in grouped | {m[0] for m in matched} | set(LEGEND_LABEL.findall(legend)):
            assert label in known_labels, f"{title}: label {label!r} is on none of {sorted(names)}"
        for label, operator, value in matched:
            if operator == "=":  # an exact value must be one the server can produce
                assert any(labels.get(label) == value for labels in label_sets), f"{title}: {label}={value!r}"

    # the panels the deployment issue asks for
    for wanted in (
        "phq_requests_total",
        "phq_predictions_total",
        "phq_rejected_total",
        "phq_request_seconds_bucket",
        "phq_stage_seconds_bucket",
        "phq_requests_in_flight",
        "phq_requests_waiting",
        "phq_fusion_batch_windows_bucket",
        "phq_fusion_batch_requests_bucket",
        "phq_onnx_session_provider",
        "phq_model_info",
        "phq_worker_replacements_total",
    ):
        assert wanted in used_metrics, f"no panel shows {wanted}"
