"""The Grafana dashboards in files/dashboards: every query parses, the layout is sound.

PromQL is checked by Prometheus' own parser (``promtool check rules`` on a generated rules
file). Grafana has no offline LogQL checker and Loki's parser is not available here, so LogQL
goes through a small checker written against the Loki 3.x LogQL reference (stream selectors,
line filters, parsers, label filters, range and vector aggregations).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from dashboard_queries import all_panels, load, queries, substitute  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = REPO / "files" / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
# Datasource UIDs the grafana role provisions (roles/grafana/vars/main.yml).
PROVISIONED_UIDS = {"prometheus", "loki"}
# Labels Promtail attaches to the backend's log streams.
PROMTAIL_LABELS = {"job", "host", "level", "filename"}


def variable_queries(dashboard: dict) -> list[str]:
    """The PromQL selectors inside label_values(...) template variables."""
    selectors = []
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)", query)
        assert match, f"variable {var['name']}: unsupported query {query!r}"
        selectors.append(match.group(1))
    return selectors


# --------------------------------------------------------------------------- LogQL checker

LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
RANGE_AGGREGATIONS = {"count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time"}
VECTOR_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "sort", "sort_desc"}
PARSERS = {"json", "logfmt", "unpack", "decolorize"}
PARSERS_WITH_ARG = {"regexp", "pattern", "line_format"}
TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
    | (?P<duration>\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*)
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<op>\|=|\|~|\|>|!=|!~|!>|=~|==|>=|<=|=|>|<|\||\{|\}|\(|\)|\[|\]|,)
    | (?P<ident>[a-zA-Z_][a-zA-Z0-9_]*)
    )""",
    re.VERBOSE,
)


class LogQLError(ValueError):
    pass


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise LogQLError(f"unexpected character at {pos}: {text[pos : pos + 10]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    return json.loads(token)  # Go's double-quoted strings use the same escapes as JSON here


class LogQLParser:
    """Recursive descent over the subset of LogQL (Loki 3.x) the dashboards may use."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.stream_labels: set[str] = set()

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("eof", "")

    def take(self, kind: str | None = None, value: str | None = None) -> str:
        tok_kind, tok_value = self.peek()
        if (kind and tok_kind != kind) or (value and tok_value != value):
            raise LogQLError(f"expected {value or kind}, got {tok_value or tok_kind!r}")
        self.pos += 1
        return tok_value

    def parse(self) -> str:
        kind = "metric" if self.peek()[0] == "ident" else "log"
        if kind == "metric":
            self.metric_query()
        else:
            self.log_query()
        if self.peek()[0] != "eof":
            raise LogQLError(f"unexpected {self.peek()[1]!r} after the query")
        return kind

    def selector(self) -> None:
        if self.peek()[1] != "{":
            raise LogQLError('a log query starts with a stream selector {label="value"}')
        self.take(value="{")
        matchers = []
        while True:
            name = self.take("ident")
            op = self.take("op")
            if op not in {"=", "!=", "=~", "!~"}:
                raise LogQLError(f"bad matcher operator {op!r}")
            value = unquote(self.take("string"))
            if op in {"=~", "!~"}:
                try:
                    re.compile(value)
                except re.error as err:
                    raise LogQLError(f"bad regex {value!r}: {err}") from err
            matchers.append((name, op, value))
            if self.peek()[1] == ",":
                self.take(value=",")
                continue
            self.take(value="}")
            break
        # Loki refuses selectors whose every matcher also matches the empty label value.
        if not any((op == "=" and value) or (op == "=~" and not re.fullmatch(value, "")) for _, op, value in matchers):
            raise LogQLError("the stream selector needs a matcher that does not match empty values")
        self.stream_labels |= {name for name, _, _ in matchers}

    def log_query(self) -> None:
        self.selector()
        while self.peek()[1] in {"|=", "!=", "|~", "!~", "|>", "!>", "|"}:
            op = self.take("op")
            if op != "|":
                value = unquote(self.take("string"))
                if op in {"|~", "!~"}:
                    re.compile(value)
                continue
            stage = self.take("ident")
            if stage in PARSERS:
                continue
            if stage in PARSERS_WITH_ARG:
                self.take("string")
            elif stage == "label_format":
                self.label_list(assign=True)
            elif stage in {"drop", "keep"}:
                self.label_list(assign=False)
            else:  # label filter: | level = "ERROR", | status >= 500
                op = self.take("op")
                if op not in {"=", "!=", "=~", "!~", "==", ">", ">=", "<", "<="}:
                    raise LogQLError(f"bad label filter operator {op!r}")
                kind = self.peek()[0]
                if kind not in {"string", "number", "duration"}:
                    raise LogQLError(f"bad label filter value {self.peek()[1]!r}")
                self.pos += 1

    def label_list(self, assign: bool) -> None:
        while True:
            self.take("ident")
            if assign:
                self.take(value="=")
                if self.peek()[0] not in {"string", "ident"}:
                    raise LogQLError('label_format needs label="template" or label=other_label')
                self.pos += 1
            if self.peek()[1] != ",":
                return
            self.take(value=",")

    def grouping(self) -> None:
        self.take("ident")  # by / without
        self.take(value="(")
        self.take("ident")
        while self.peek()[1] == ",":
            self.take(value=",")
            self.take("ident")
        self.take(value=")")

    def metric_query(self) -> None:
        name = self.take("ident")
        if name in RANGE_AGGREGATIONS:
            self.take(value="(")
            self.log_query()
            self.take(value="[")
            self.take("duration")
            self.take(value="]")
            self.take(value=")")
            return
        if name not in VECTOR_AGGREGATIONS:
            raise LogQLError(f"{name!r} is not a LogQL aggregation (PromQL metric names are not LogQL)")
        if self.peek()[1] in {"by", "without"}:
            self.grouping()
        self.take(value="(")
        if name in {"topk", "bottomk"}:
            self.take("number")
            self.take(value=",")
        self.metric_query()
        self.take(value=")")
        if self.peek()[1] in {"by", "without"}:
            self.grouping()


def check_logql(expr: str) -> tuple[str, set[str]]:
    """Parse ``expr``; return its kind ("log" or "metric") and the stream labels it selects on."""
    parser = LogQLParser(expr)
    return parser.parse(), parser.stream_labels


# --------------------------------------------------------------------------- tests


def test_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARDS} >= {"clientforge-backend.json", "monitoring-stack.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_metadata(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"] == path.stem, "the uid stays stable: it is the file name"
    assert 39 <= dashboard["schemaVersion"] <= 41, "schemaVersion of Grafana 11/12"
    assert dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned dashboards carry no database id"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panel_ids_unique_and_layout_does_not_overlap(path: Path) -> None:
    panels = all_panels(load(path))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0, p["title"]
        assert g["x"] + g["w"] <= 24, f"{p['title']} is wider than the 24-column grid"
        boxes.append((p["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for (t1, ax1, ay1, ax2, ay2), (t2, bx1, by1, bx2, by2) in combinations(boxes, 2):
        overlap = ax1 < bx2 and bx1 < ax2 and ay1 < by2 and by1 < ay2
        assert not overlap, f"{path.name}: panels {t1!r} and {t2!r} overlap"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_datasources_are_the_provisioned_uids(path: Path) -> None:
    text = path.read_text()
    refs = [json.loads(m) for m in re.findall(r'"datasource"\s*:\s*(\{[^{}]*\})', text)]
    uids = {r["uid"] for r in refs if not r["uid"].startswith("-- ")}
    assert uids <= PROVISIONED_UIDS, f"{path.name} references {uids - PROVISIONED_UIDS}"
    for panel in all_panels(load(path)):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in PROVISIONED_UIDS, panel["title"]


def test_every_promql_expression_passes_promtool(tmp_path: Path) -> None:
    if not PROMTOOL:
        pytest.skip("promtool not installed (Debian package prometheus): PromQL not checked")
    exprs = []
    for path in DASHBOARDS:
        dashboard = load(path)
        exprs += [(f"{path.name}: {title}", substitute(e)) for title, e in queries(dashboard, "prometheus")]
        exprs += [(f"{path.name}: variable", substitute(s)) for s in variable_queries(dashboard)]
    assert len(exprs) >= 20
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"dashboard:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)],
            }
        ]
    }
    rules_file = tmp_path / "dashboards.rules.yml"
    rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = subprocess.run([PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"promtool rejected a dashboard query:\n{result.stdout}\n{result.stderr}"
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_promtool_check_catches_a_broken_query(tmp_path: Path) -> None:
    """The PromQL check above can fail: the same pipeline rejects a query with a bad grouping."""
    if not PROMTOOL:
        pytest.skip("promtool not installed (Debian package prometheus)")
    bad = {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by le (rate(x[1m]))"}]}]}
    rules_file = tmp_path / "bad.rules.yml"
    rules_file.write_text(yaml.safe_dump(bad))
    result = subprocess.run([PROMTOOL, "check", "rules", str(rules_file)], capture_output=True, text=True, check=False)
    assert result.returncode != 0


def test_every_logql_expression_is_well_formed() -> None:
    found = 0
    for path in DASHBOARDS:
        for title, expr in queries(load(path), "loki"):
            try:
                _, labels = check_logql(substitute(expr))
            except (LogQLError, re.error) as err:
                pytest.fail(f"{path.name}: {title}: {expr!r}: {err}")
            assert labels <= PROMTAIL_LABELS, f"{title}: selects on labels Promtail does not set: {labels}"
            found += 1
    assert found >= 2


@pytest.mark.parametrize(
    "expr",
    [
        '{job="backend"} |= "ERROR"',
        '{job="backend", host=~"app1|app2"} |= "ERROR" != "healthcheck"',
        '{job="backend", level="ERROR"} | json | status >= 500 | line_format "{{.message}}"',
        'sum by (host) (count_over_time({job="backend"} |= "ERROR" [5m]))',
        'topk(3, sum(rate({job="backend"} | logfmt [1m])) by (host))',
    ],
)
def test_logql_checker_accepts_valid_queries(expr: str) -> None:
    check_logql(expr)


@pytest.mark.parametrize(
    "expr",
    [
        'http_requests_total{job="backend"}',  # PromQL, not LogQL
        'rate(http_requests_total{job="backend"}[1m])',
        "{job=backend}",  # unquoted value
        '{job="backend"} |= ERROR',  # unquoted filter
        "{}",
        '{job=~".*"}',  # matches empty values: Loki refuses it
        'count_over_time({job="backend"})',  # no range
        'sum by (host) (count_over_time({job="backend"} [5m])',  # unbalanced
        '{job="backend"} | level ~ "x"',
    ],
)
def test_logql_checker_rejects_malformed_queries(expr: str) -> None:
    with pytest.raises((LogQLError, re.error)):
        check_logql(expr)


def test_backend_dashboard_has_the_spec_panels() -> None:
    dashboard = load(DASHBOARD_DIR / "clientforge-backend.json")
    prom = queries(dashboard, "prometheus")
    exprs = {expr for _, expr in prom}
    assert 'sum by (route) (rate(http_requests_total{job="backend", instance=~"$host"}[1m]))' in exprs
    p95 = "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{%s}[5m])))"
    assert p95 % 'job="backend", instance=~"$host"' in exprs
    assert any('status=~"5.."' in e and "/" in e for e in exprs), "error ratio panel (5xx / all)"
    assert any("active_connections" in e for e in exprs), "in-flight requests panel"
    assert any("by (instance)" in e for e in exprs), "per-host panels"
    for title, expr in prom:
        assert 'instance=~"$host"' in expr, f"{title} ignores the $host variable"
    logs = [p for p in all_panels(dashboard) if p["type"] == "logs"]
    assert logs and any('|= "ERROR"' in t["expr"] for p in logs for t in p["targets"])
    host = next(v for v in dashboard["templating"]["list"] if v["name"] == "host")
    assert host["query"]["query"] == 'label_values(up{job="backend"}, instance)'
    assert host["datasource"]["uid"] == "prometheus"


def test_stack_dashboard_covers_the_stack() -> None:
    exprs = " ".join(e for _, e in queries(load(DASHBOARD_DIR / "monitoring-stack.json"), "prometheus"))
    for metric in (
        "up",
        "loki_distributor_lines_received_total",
        "loki_distributor_bytes_received_total",
        "promtail_sent_entries_total",
        "promtail_dropped_entries_total",
    ):
        assert re.search(rf"\b{metric}\b", exprs), metric
