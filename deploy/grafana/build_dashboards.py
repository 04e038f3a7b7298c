#!/usr/bin/env python3
"""Write Agentry's Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are committed; this script is how they are made, so the five
dashboards share one layout, one set of variables and one way of querying.
Edit a dashboard here and run

    python3 deploy/grafana/build_dashboards.py

(or edit the JSON directly, e.g. after exporting from Grafana: the files are
the source of truth for provisioning; `deploy/check-observability dashboards`
checks them either way).

Conventions:
  * every panel and target uses the data source variable ${datasource};
  * every query selects job="agentry" and instance=~"$instance";
  * gauges that every replica reports alike (sampled from the database:
    job_queue_depth, jobs_oldest_queued_age_seconds, active_sessions) are
    combined with max, never sum;
  * "in range" panels use increase(...[$__range]) as instant queries.

Standard library only.
"""

import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent / "dashboards"

DS = {"type": "prometheus", "uid": "${datasource}"}
S = 'job="agentry",instance=~"$instance"'
R = "$__rate_interval"
SLO_SEL = 'job="agentry",instance=~"$instance",endpoint!~"/health|/ready|/metrics"'
# Label matchers used inside f-strings (which cannot hold backslashes before Python 3.12).
M_CACHE_ANSWER = 'cache="answer"'
M_CACHE_RESPONSE = 'cache="response"'
M_CHECK_PASSED = 'check="passed"'
M_KIND_AGENT_RUN = 'kind="agent_run"'
# Budget alert levels are soft/exhausted (servers before the metric catalogue: soft_limit/limit).
M_LEVEL_EXHAUSTED = 'level=~"exhausted|limit"'
M_LE_0_5 = 'le="0.5"'
M_NOT_CHECK_PASSED = 'check!="passed"'
M_NOT_STATUS_SUCCEEDED = 'status!="succeeded"'
M_NOT_STATUS_SUCCESS = 'status!="success"'
M_RESULT_HIT = 'result="hit"'
M_RE_ENDPOINT_V1 = 'endpoint=~"/v1/.*"'
M_RE_STATUS_4 = 'status=~"4.."'
M_RE_STATUS_5 = 'status=~"5.."'
M_STATUS_429 = 'status="429"'
M_STATUS_FAILED = 'status="failed"'
M_STATUS_QUEUED = 'status="queued"'
M_STATUS_SUCCESS = 'status="success"'
# Token types: the server records input/output (prompt/completion in older notes).
M_TYPE_COMPLETION = 'type=~"output|completion"'


def sel(*extra):
    return "{" + ",".join((S,) + extra) + "}"


# ---------------------------------------------------------------- targets


def t(expr, legend="", instant=False, fmt=None):
    target = {"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend or "__auto", "range": not instant, "instant": instant}
    if fmt:
        target["format"] = fmt
    return target


# ---------------------------------------------------------------- panels


def _thresholds(steps):
    """steps: [(value or None, color), ...]"""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


GREEN = [(None, "green")]


def _panel(kind, title, targets, description, unit, w, h, thresholds=None, mappings=None, min_=None, max_=None, decimals=None):
    defaults = {"unit": unit, "thresholds": _thresholds(thresholds or GREEN), "mappings": mappings or [], "color": {"mode": "palette-classic"}}
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    refs = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    for i, target in enumerate(targets):
        target["refId"] = refs[i]
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "gridPos": {"w": w, "h": h},
    }


def ts(title, targets, unit="short", description="", w=12, h=8, stack=False, thresholds=None, threshold_lines=False, min_=None, max_=None, bars=False, interval=None):
    p = _panel("timeseries", title, targets, description, unit, w, h, thresholds, min_=min_, max_=max_)
    p["fieldConfig"]["defaults"]["custom"] = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 80 if bars else (30 if stack else 10),
        "showPoints": "never",
        "spanNulls": False,
        "axisSoftMin": 0,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line" if threshold_lines else "off"},
    }
    p["options"] = {
        "legend": {"displayMode": "table", "placement": "right" if w >= 16 else "bottom", "showLegend": True, "calcs": ["mean", "max", "lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    if interval:
        p["interval"] = interval
    return p


def stat(title, targets, unit="short", description="", w=4, h=4, thresholds=None, mappings=None, decimals=None, color_mode="value", graph=True):
    p = _panel("stat", title, targets, description, unit, w, h, thresholds, mappings, decimals=decimals)
    p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    p["options"] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": color_mode,
        "graphMode": "area" if graph else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
        "showPercentChange": False,
        "wideLayout": True,
    }
    return p


def bars(title, targets, unit="short", description="", w=8, h=8, thresholds=None):
    """Horizontal bar gauge of instant values (e.g. totals over the range)."""
    p = _panel("bargauge", title, targets, description, unit, w, h, thresholds)
    p["fieldConfig"]["defaults"]["color"] = {"mode": "continuous-BlYlRd"}
    p["fieldConfig"]["defaults"]["min"] = 0
    p["options"] = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "valueMode": "color",
        "namePlacement": "left",
        "showUnfilled": True,
        "sizing": "auto",
        "minVizWidth": 8,
        "minVizHeight": 16,
        "maxVizHeight": 300,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    return p


def states(title, targets, mappings, description="", w=12, h=8):
    """State timeline (one row per series) for small enumerated gauges."""
    p = _panel("state-timeline", title, targets, description, "short", w, h, mappings=mappings)
    p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    p["fieldConfig"]["defaults"]["custom"] = {"fillOpacity": 80, "lineWidth": 0, "spanNulls": False}
    p["options"] = {"showValue": "never", "mergeValues": True, "alignValue": "left", "rowHeight": 0.9, "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "single", "sort": "none"}}
    return p


def heatmap(title, targets, unit="short", description="", w=12, h=8, interval=None):
    """Heatmap of a Prometheus histogram (targets with format=heatmap)."""
    p = _panel("heatmap", title, targets, description, unit, w, h)
    p["options"] = {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange", "reverse": False},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": False},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": unit},
        "showValue": "never",
    }
    p["fieldConfig"]["defaults"] = {"custom": {"hideFrom": {"legend": False, "tooltip": False, "viz": False}, "scaleDistribution": {"type": "linear"}}}
    if interval:
        p["interval"] = interval
    return p


def table(title, targets, description="", w=12, h=8, unit="short", hide=("Time",), rename=None, thresholds=None):
    p = _panel("table", title, targets, description, unit, w, h, thresholds)
    p["fieldConfig"]["defaults"]["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False}
    p["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "countRows": False, "fields": ""}}
    p["transformations"] = [{"id": "organize", "options": {"excludeByName": {name: True for name in hide}, "indexByName": {}, "renameByName": rename or {}}}]
    return p


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


# ---------------------------------------------------------------- value mappings and helpers


def value_map(pairs):
    """pairs: [(value, text, color)]"""
    return [{"type": "value", "options": {str(v): {"text": text, "color": color, "index": i} for i, (v, text, color) in enumerate(pairs)}}]


BREAKER = value_map([(0, "closed", "green"), (1, "open", "red"), (2, "half-open", "orange")])
UP = value_map([(0, "down", "red"), (1, "up", "green")])
DEGRADED = value_map([(0, "Redis OK", "green"), (1, "degraded (local)", "red")])


def ratio(bad, total, by=""):
    """bad/total that is 0 (not empty) when nothing is bad."""
    agg = f"sum by ({by}) " if by else "sum "
    return f"({agg}({bad}) or 0 * {agg}({total})) / {agg}({total})"


def quantiles(metric, selector, by="", qs=(0.5, 0.95, 0.99), legend_prefix=""):
    group = f"{by}, le" if by else "le"
    out = []
    for q in qs:
        label = f"p{round(q * 100)}"
        legend = f"{legend_prefix}{label}" if not by else "{{" + by + "}} " + label
        out.append(t(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{R}])))", legend))
    return out


# ---------------------------------------------------------------- dashboards


def variables(extra=()):
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "includeAll": False,
                "multi": False,
                "options": [],
                "refresh": 1,
                "regex": "",
                "skipUrlSync": False,
            },
            query_var("instance", "Instance", "label_values(agentry_build_info, instance)"),
            *extra,
        ]
    }


def query_var(name, label, query, regex="", all_value=".*"):
    var = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": query,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "includeAll": True,
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": regex,
        "skipUrlSync": False,
        "sort": 1,
    }
    if all_value is not None:
        var["allValue"] = all_value
    return var


def layout(panels):
    """Give panels ids and grid positions, left to right, top to bottom."""
    x = y = line_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if p["type"] == "row" or x + w > 24:
            y += line_h
            x = line_h = 0
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        line_h = max(line_h, h)
        if p["type"] == "row":
            y += h
            x = line_h = 0
    return panels


def dashboard(uid, title, description, panels, extra_vars=(), time_from="now-6h"):
    return {
        "__inputs": [],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [{"type": "dashboards", "title": "Agentry", "tags": ["agentry"], "asDropdown": True, "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False, "tooltip": "", "url": ""}],
        "panels": layout(panels),
        "refresh": "1m",
        "schemaVersion": 39,
        "tags": ["agentry"],
        "templating": variables(extra_vars),
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# ---- Platform overview


def platform_overview():
    http = "http_requests_total"
    all_ = f"rate({http}{sel()}[{R}])"
    p = [
        row("Now"),
        stat("Requests / s", [t(f"sum({all_})")], "reqps", "HTTP requests per second, all endpoints and selected replicas."),
        stat(
            "5xx error ratio",
            [t(ratio(f"rate({http}{sel(M_RE_STATUS_5)}[{R}])", all_))],
            "percentunit",
            "Share of HTTP requests answered with a 5xx status.",
            thresholds=[(None, "green"), (0.001, "yellow"), (0.01, "red")],
            decimals=2,
        ),
        stat(
            "p95 latency",
            [t(f"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{sel()}[{R}])))")],
            "s",
            "95th percentile of the HTTP response time (until the response head).",
            thresholds=[(None, "green"), (1, "yellow"), (5, "red")],
        ),
        stat(
            "Replicas up",
            [t('sum(up{job="agentry",instance=~"$instance"})', "up"), t('count(up{job="agentry",instance=~"$instance"})', "targets")],
            "short",
            "Replicas Prometheus scrapes successfully, out of its Agentry targets.",
            graph=False,
        ),
        stat("Active sessions", [t(f"sum(max by (tenant) (active_sessions{sel()}))")], "short", "Signed-in sessions that have not expired (20 largest tenants plus \"other\")."),
        stat(
            "Coordination",
            [t(f"max(coordination_degraded{sel()})")],
            "short",
            "Whether any replica answers without Redis (limits, budgets and caches then apply per replica).",
            thresholds=[(None, "green"), (1, "red")],
            mappings=DEGRADED,
            color_mode="background",
            graph=False,
        ),
        stat(
            "Availability (range)",
            [t("1 - (" + ratio(f"increase({http}{{{SLO_SEL},{M_RE_STATUS_5}}}[$__range])", f"increase({http}{{{SLO_SEL}}}[$__range])") + ")", instant=True)],
            "percentunit",
            "Share of requests (probes excluded) without a 5xx status over the dashboard's time range. SLO: 99.9 %.",
            thresholds=[(None, "red"), (0.999, "green")],
            decimals=3,
            graph=False,
        ),
        stat(
            "Fast requests (range)",
            [t(f'sum(increase(http_request_duration_seconds_bucket{{{SLO_SEL},le="0.5"}}[$__range])) / sum(increase(http_request_duration_seconds_count{{{SLO_SEL}}}[$__range]))', instant=True)],
            "percentunit",
            "Share of requests (probes excluded) answered within 0.5 s over the dashboard's time range. SLO: 99 %.",
            thresholds=[(None, "red"), (0.99, "green")],
            decimals=2,
            graph=False,
        ),
        stat(
            "Availability burn (1h)",
            [t("job:slo_availability_error:ratio_rate1h / on (job) (1 - job:slo_availability:objective)")],
            "x",
            "How many times faster than sustainable the availability error budget is being spent (1 = the whole budget in 30 days). Pages at 14.4 (1h) and 6 (6h). All replicas.",
            thresholds=[(None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red")],
            decimals=2,
        ),
        stat(
            "Latency burn (1h)",
            [t("job:slo_latency_error:ratio_rate1h / on (job) (1 - job:slo_latency:objective)")],
            "x",
            "How many times faster than sustainable the latency error budget (1 % of requests slower than 0.5 s) is being spent. All replicas.",
            thresholds=[(None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red")],
            decimals=2,
        ),
        stat("Queued jobs", [t(f'sum(max by (kind) (job_queue_depth{sel(M_STATUS_QUEUED)}))')], "short", "Jobs waiting for a worker, all kinds."),
        stat(
            "Oldest queued job",
            [t(f"max(jobs_oldest_queued_age_seconds{sel()})")],
            "s",
            "Age of the oldest queued job of any kind. Alerts above 10 minutes.",
            thresholds=[(None, "green"), (300, "yellow"), (600, "red")],
        ),
        row("HTTP traffic"),
        ts("Requests / s by status", [t(f"sum by (status) ({all_})", "{{status}}")], "reqps", "HTTP requests per second by response status.", stack=True),
        ts(
            "Error ratio",
            [
                t(ratio(f"rate({http}{sel(M_RE_STATUS_5)}[{R}])", all_), "5xx"),
                t(ratio(f"rate({http}{sel(M_RE_STATUS_4)}[{R}])", all_), "4xx"),
                t(ratio(f"rate({http}{sel(M_STATUS_429)}[{R}])", all_), "429 (rate limited)"),
            ],
            "percentunit",
            "Share of HTTP requests by class of error status.",
        ),
        ts("Latency", quantiles("http_request_duration_seconds", sel()), "s", "Percentiles of the HTTP response time, all endpoints (until the response head; streamed bodies are not included)."),
        ts("Requests / s by replica", [t(f"sum by (instance) ({all_})", "{{instance}}")], "reqps", "How the load balancer spreads requests over the replicas."),
        ts("Top endpoints by requests / s", [t(f"topk(10, sum by (method, endpoint) ({all_}))", "{{method}} {{endpoint}}")], "reqps", "The ten busiest route templates.", w=24),
        ts(
            "Slowest endpoints (p95)",
            [t(f"topk(10, histogram_quantile(0.95, sum by (method, endpoint, le) (rate(http_request_duration_seconds_bucket{sel()}[{R}]))))", "{{method}} {{endpoint}}")],
            "s",
            "The ten route templates with the highest 95th percentile response time.",
        ),
        ts("5xx by endpoint", [t(f"sum by (method, endpoint, status) (rate({http}{sel(M_RE_STATUS_5)}[{R}]))", "{{method}} {{endpoint}} {{status}}")], "reqps", "Server errors per second by route and status."),
        row("SLOs (all replicas)"),
        ts(
            "Availability burn rate",
            [t(f"job:slo_availability_error:ratio_rate{w} / on (job) (1 - job:slo_availability:objective)", w) for w in ("5m", "1h", "6h", "1d", "3d")],
            "x",
            "Error ratio over each window divided by the error budget (0.1 %). Burn-rate alerts: 14.4 (1h & 5m), 6 (6h & 30m) page; 3 (1d & 2h), 1 (3d & 6h) open a ticket.",
            thresholds=[(None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red")],
            threshold_lines=True,
        ),
        ts(
            "Latency burn rate",
            [t(f"job:slo_latency_error:ratio_rate{w} / on (job) (1 - job:slo_latency:objective)", w) for w in ("5m", "1h", "6h", "1d", "3d")],
            "x",
            "Share of requests slower than 0.5 s over each window divided by the error budget (1 %).",
            thresholds=[(None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red")],
            threshold_lines=True,
        ),
        row("Replicas"),
        table(
            "Build versions",
            [t(f"max by (instance, version) (agentry_build_info{sel()})", instant=True, fmt="table")],
            "The version each replica runs.",
            w=8,
            hide=("Time", "Value"),
        ),
        states("Replica up", [t('up{job="agentry",instance=~"$instance"}', "{{instance}}")], UP, "Whether Prometheus could scrape each replica.", w=8),
        states("Coordination degraded", [t(f"max by (instance) (coordination_degraded{sel()})", "{{instance}}")], DEGRADED, "Replicas answering without Redis.", w=8),
        ts("Coordination fallbacks / s", [t(f"sum by (instance) (rate(coordination_fallbacks_total{sel()}[{R}]))", "{{instance}}")], "ops", "Operations answered locally because Redis was unreachable.", w=8),
        ts("Active sessions by tenant", [t(f"max by (tenant) (active_sessions{sel()})", "{{tenant}}")], "short", "Signed-in sessions not expired, per tenant (20 largest plus \"other\").", w=8, stack=True),
        ts("Rejected credentials / s", [t(f"sum by (kind) (rate(auth_rejected_credentials_total{sel()}[{R}]))", "{{kind}}")], "ops", "Credentials refused, by kind. A jump can mean a leaked or rotated key, or a brute-force attempt.", w=8),
        row("Jobs, events and webhooks"),
        ts("Queue depth", [t(f"max by (kind, status) (job_queue_depth{sel()})", "{{kind}} {{status}}")], "short", "Jobs per kind and status (queued, running, dead). Every replica reports the same database-wide numbers."),
        ts(
            "Oldest queued job by kind",
            [t(f"max by (kind) (jobs_oldest_queued_age_seconds{sel()})", "{{kind}}")],
            "s",
            "How long the oldest queued job of each kind has waited (retries waiting for their backoff included). Alerts above 10 minutes.",
            thresholds=[(None, "green"), (600, "red")],
            threshold_lines=True,
        ),
        ts("Jobs created / s", [t(f"sum by (kind) (rate(jobs_created_total{sel()}[{R}]))", "{{kind}}")], "ops", "", w=8),
        ts("Jobs finished / s", [t(f"sum by (kind, status) (rate(jobs_finished_total{sel()}[{R}]))", "{{kind}} {{status}}")], "ops", "Finished jobs by kind and final status (succeeded, failed, dead, cancelled).", w=8),
        ts(
            "Attempts per finished job",
            [t(f"sum by (kind) (rate(job_attempts_total{sel()}[{R}])) / sum by (kind) (rate(jobs_finished_total{sel()}[{R}]))", "{{kind}}")],
            "short",
            "Claims per finished job: above 1 means retries.",
            w=8,
        ),
        ts("Job duration (p95)", [t(f"histogram_quantile(0.95, sum by (kind, le) (rate(job_duration_seconds_bucket{sel()}[{R}])))", "{{kind}}")], "s", "95th percentile of a job attempt's duration, by kind.", w=8),
        ts(
            "Events published / s",
            [t(f"sum by (type) (rate(events_published_total{sel()}[{R}]))", "{{type}}"), t(f"sum by (type) (rate(events_publish_failures_total{sel()}[{R}]))", "failed: {{type}}")],
            "ops",
            "Platform events by type, and failures to publish them.",
            w=8,
        ),
        ts("Bulk items / s", [t(f"sum by (type) (rate(bulk_items_total{sel()}[{R}]))", "{{type}}")], "ops", "Items submitted through native batches, by type.", w=8),
        ts("Webhook deliveries / s", [t(f"sum by (outcome) (rate(webhook_deliveries_total{sel()}[{R}]))", "{{outcome}}")], "ops", "Webhook delivery attempts by outcome.", stack=True),
        ts("Webhook delivery time", quantiles("webhook_delivery_seconds", sel(), qs=(0.5, 0.95)), "s", "Time to deliver one webhook (one attempt)."),
        row("Audit and data integrity"),
        stat(
            "Broken audit chains",
            [t(f"max(audit_chains_broken{sel()})")],
            "short",
            "Tenants whose audit hash chain failed its last verification. Anything above 0 is a security incident.",
            w=6,
            thresholds=[(None, "green"), (1, "red")],
            color_mode="background",
            graph=False,
        ),
        stat(
            "Since last audit verification",
            [t(f"time() - max(audit_chain_verified_timestamp_seconds{sel()} > 0)")],
            "s",
            "Time since the newest completed verification of the audit chains (any replica). Alerts after 3 hours.",
            w=6,
            thresholds=[(None, "green"), (10800, "red")],
            graph=False,
        ),
        stat(
            "Audit write failures (range)",
            [t(f"sum(increase(audit_write_failures_total{sel()}[$__range])) or vector(0)", instant=True)],
            "short",
            "Audit records that could not be written over the dashboard's range.",
            w=6,
            thresholds=[(None, "green"), (1, "red")],
            graph=False,
        ),
        stat(
            "Model call records dropped (range)",
            [t(f"sum(increase(model_call_log_dropped_total{sel()}[$__range])) or vector(0)", instant=True)],
            "short",
            "Model call records dropped instead of stored (usage reports miss them) over the dashboard's range.",
            w=6,
            thresholds=[(None, "green"), (1, "red")],
            graph=False,
        ),
    ]
    return dashboard(
        "agentry-overview",
        "Agentry / Platform overview",
        "Traffic, errors, latency, SLOs, replicas, job queues and data integrity of the Agentry platform.",
        p,
    )


# ---- Gateway and models


def gateway_models():
    m = 'model=~"$model"'
    mr = "model_requests_total"
    all_ = f"rate({mr}{sel(m)}[{R}])"
    err = f"rate({mr}{sel(m, M_NOT_STATUS_SUCCESS)}[{R}])"
    cache_all = f"rate(cache_requests_total{sel(M_CACHE_RESPONSE)}[{R}])"
    cache_hit = f"rate(cache_requests_total{sel(M_CACHE_RESPONSE, M_RESULT_HIT)}[{R}])"
    p = [
        row("Now"),
        stat("Model calls / s", [t(f"sum({all_})")], "reqps", "Calls to model providers (after routing and fallbacks)."),
        stat("Model error ratio", [t(ratio(err, all_))], "percentunit", "Share of model calls that did not succeed.", thresholds=[(None, "green"), (0.01, "yellow"), (0.05, "red")], decimals=2),
        stat("Model p95 latency", [t(f"histogram_quantile(0.95, sum by (le) (rate(model_request_duration_seconds_bucket{sel(m)}[{R}])))")], "s", "95th percentile of a model call's duration."),
        stat("Tokens / s", [t(f"sum(rate(token_usage_total{sel(m)}[{R}]))")], "short", "Input and output tokens per second."),
        stat(
            "Response cache hit ratio",
            [t(f"sum({cache_hit}) / sum({cache_all})")],
            "percentunit",
            "Share of gateway requests answered from the response cache.",
            decimals=1,
        ),
        stat(
            "Breakers not closed",
            [t(f"count(max by (upstream) (circuit_breaker_state{sel()}) >= 1) or vector(0)")],
            "short",
            "Upstreams whose circuit breaker is open or half-open on at least one replica.",
            thresholds=[(None, "green"), (1, "red")],
            color_mode="background",
            graph=False,
        ),
        row("Model calls"),
        ts("Calls / s by model", [t(f"sum by (model) ({all_})", "{{model}}")], "reqps", "", stack=True),
        ts("Calls / s by provider and status", [t(f"sum by (provider, status) ({all_})", "{{provider}} {{status}}")], "reqps", "Status is \"success\" or the class of error."),
        ts("Error ratio by model", [t(ratio(err, all_, by="model"), "{{model}}")], "percentunit", "Share of each model's calls that failed."),
        ts("Errors / s by model and error", [t(f"sum by (model, status) ({err})", "{{model}} {{status}}")], "reqps", "Failed model calls by error class."),
        row("Latency"),
        ts("Model call latency", quantiles("model_request_duration_seconds", sel(m)), "s", "Percentiles of a model call's duration, all selected models."),
        ts("p95 latency by model", [t(f"histogram_quantile(0.95, sum by (model, le) (rate(model_request_duration_seconds_bucket{sel(m)}[{R}])))", "{{model}}")], "s", ""),
        heatmap("Model call latency distribution", [t(f"sum by (le) (increase(model_request_duration_seconds_bucket{sel(m)}[{R}]))", "{{le}}", fmt="heatmap")], "s", "Calls per latency bucket over time.", w=24),
        row("Tokens"),
        ts("Tokens / s by type", [t(f"sum by (type) (rate(token_usage_total{sel(m)}[{R}]))", "{{type}}")], "short", "Input (prompt) and output (completion) tokens.", stack=True, w=8),
        ts("Tokens / s by model", [t(f"sum by (model) (rate(token_usage_total{sel(m)}[{R}]))", "{{model}}")], "short", "", stack=True, w=8),
        ts(
            "Output tokens per successful call",
            [t(f'sum by (model) (rate(token_usage_total{sel(m, M_TYPE_COMPLETION)}[{R}])) / sum by (model) (rate({mr}{sel(m, M_STATUS_SUCCESS)}[{R}]))', "{{model}}")],
            "short",
            "Average answer length by model.",
            w=8,
        ),
        row("Protection and caching"),
        states("Circuit breakers", [t(f"max by (upstream) (circuit_breaker_state{sel()})", "{{upstream}}")], BREAKER, "Worst state of each upstream's breaker over the selected replicas. Alerts when not closed for 5 minutes."),
        states("Circuit breakers by replica", [t(f"circuit_breaker_state{sel()}", "{{upstream}} @ {{instance}}")], BREAKER, ""),
        ts("Rate-limited requests / s", [t(f"sum by (tier, dimension) (rate(rate_limited_requests_total{sel()}[{R}]))", "{{tier}} {{dimension}}")], "reqps", "Requests refused by a rate limit, by tier and by the dimension (requests, tokens…) that was exhausted.", stack=True),
        ts(
            "Response cache",
            [t(f"sum({cache_hit}) / sum({cache_all})", "hit ratio")],
            "percentunit",
            "Share of cacheable gateway requests answered from the response cache.",
            min_=0,
            max_=1,
        ),
        ts(
            "Gateway endpoints",
            [t(f'sum by (method, endpoint, status) (rate(http_requests_total{sel(M_RE_ENDPOINT_V1)}[{R}]))', "{{method}} {{endpoint}} {{status}}")],
            "reqps",
            "Requests per second to the OpenAI-compatible API (/v1/…), by route and status.",
            w=24,
        ),
    ]
    return dashboard(
        "agentry-gateway",
        "Agentry / Gateway and models",
        "Model calls through the gateway: volume, errors, latency, tokens, circuit breakers, rate limits and the response cache.",
        p,
        extra_vars=[query_var("model", "Model", 'label_values(model_requests_total{job="agentry"}, model)')],
    )


# ---- Agents and tools


def agents_tools():
    a = 'agent_type=~"$agent_type"'
    ar = "agent_requests_total"
    runs = f"rate({ar}{sel(a)}[{R}])"
    failed = f"rate({ar}{sel(a, M_STATUS_FAILED)}[{R}])"
    calls = f"rate(tool_calls_total{sel()}[{R}])"
    tool_err = f"rate(tool_calls_total{sel(M_NOT_STATUS_SUCCEEDED)}[{R}])"
    qs = f"agent_quality_score_bucket{sel(a)}"
    p = [
        row("Now"),
        stat("Agent runs / s", [t(f"sum({runs})")], "ops", "Finished agent runs per second (any status)."),
        stat("Run failure ratio", [t(ratio(failed, runs))], "percentunit", "Share of finished runs that failed (cancelled runs count as finished, not failed).", thresholds=[(None, "green"), (0.05, "yellow"), (0.2, "red")], decimals=1),
        stat("Run p95 duration", [t(f"histogram_quantile(0.95, sum by (le) (rate(agent_run_duration_seconds_bucket{sel(a)}[{R}])))")], "s", ""),
        stat(
            "Median quality (range)",
            [t(f"histogram_quantile(0.5, sum by (le) (increase({qs}[$__range])))", instant=True)],
            "percentunit",
            "Median quality score of the runs that were scored, over the dashboard's range (resolution: the 0.1-wide buckets).",
            thresholds=[(None, "red"), (0.5, "yellow"), (0.7, "green")],
            graph=False,
        ),
        stat("Tool calls / s", [t(f"sum({calls})")], "ops", ""),
        stat("Tool error ratio", [t(ratio(tool_err, calls))], "percentunit", "Share of tool calls that failed or were rejected.", thresholds=[(None, "green"), (0.05, "yellow"), (0.2, "red")], decimals=1),
        row("Runs"),
        ts("Runs / s by type and status", [t(f"sum by (agent_type, status) ({runs})", "{{agent_type}} {{status}}")], "ops", "", stack=True),
        bars("Runs in range", [t(f"sort_desc(sum by (agent_type, status) (increase({ar}{sel(a)}[$__range])))", "{{agent_type}} {{status}}", instant=True)], "short", "Finished runs over the dashboard's range by type and status.", w=12),
        ts("Failure ratio by type", [t(ratio(failed, runs, by="agent_type"), "{{agent_type}}")], "percentunit", "Share of each agent type's finished runs that failed."),
        ts(
            "Run duration by type",
            [t(f"histogram_quantile({q}, sum by (agent_type, le) (rate(agent_run_duration_seconds_bucket{sel(a)}[{R}])))", "{{agent_type}} p" + str(round(q * 100))) for q in (0.5, 0.95)],
            "s",
            "Median and 95th percentile of a run's duration.",
        ),
        ts("Background runs finished / s", [t(f'sum by (status) (rate(jobs_finished_total{sel(M_KIND_AGENT_RUN)}[{R}]))', "{{status}}")], "ops", "Runs started with background: true, as jobs.", w=8),
        ts("Background runs queued", [t(f'max by (status) (job_queue_depth{sel(M_KIND_AGENT_RUN)})', "{{status}}")], "short", "", w=8),
        ts("Background run queue age", [t(f'max(jobs_oldest_queued_age_seconds{sel(M_KIND_AGENT_RUN)})', "oldest queued")], "s", "", w=8),
        row("Quality"),
        bars(
            "Quality score distribution (range)",
            [t(f"sum by (le) (increase({qs}[$__range]))", "{{le}}", instant=True, fmt="heatmap")],
            "short",
            "Scored runs per score bucket (upper bound) over the dashboard's range.",
            w=8,
        ),
        heatmap("Quality score over time", [t(f"sum by (le) (increase({qs}[{R}]))", "{{le}}", fmt="heatmap")], "percentunit", "Scored runs per score bucket.", w=16, interval="5m"),
        ts(
            "Median quality by type",
            [t(f"histogram_quantile(0.5, sum by (agent_type, le) (rate({qs}[{R}])))", "{{agent_type}}")],
            "percentunit",
            "Median quality score (bucket resolution 0.1), over at least 30 minutes.",
            min_=0,
            max_=1,
            w=8,
            interval="30m",
        ),
        ts(
            "Mean quality by type",
            [t(f"sum by (agent_type) (rate(agent_quality_score_sum{sel(a)}[{R}])) / sum by (agent_type) (rate(agent_quality_score_count{sel(a)}[{R}]))", "{{agent_type}}")],
            "percentunit",
            "Mean quality score, over at least 30 minutes.",
            min_=0,
            max_=1,
            w=8,
            interval="30m",
        ),
        ts(
            "Runs scored 0.5 or less",
            [t(f'sum by (agent_type) (rate(agent_quality_score_bucket{sel(a, M_LE_0_5)}[{R}])) / sum by (agent_type) (rate(agent_quality_score_count{sel(a)}[{R}]))', "{{agent_type}}")],
            "percentunit",
            "Share of scored runs with a score of at most 0.5 (the le=\"0.5\" bucket), over at least 30 minutes.",
            min_=0,
            max_=1,
            w=8,
            interval="30m",
        ),
        row("Tools"),
        ts("Tool calls / s by tool", [t(f"sum by (tool_name) ({calls})", "{{tool_name}}")], "ops", "", stack=True),
        ts("Tool calls / s by status", [t(f"sum by (status) ({calls})", "{{status}}")], "ops", "succeeded, failed, or rejected (arguments did not match the schema, or the tool is not allowed).", stack=True),
        ts("Tool error ratio by tool", [t(ratio(tool_err, calls, by="tool_name"), "{{tool_name}}")], "percentunit", "Share of each tool's calls that failed or were rejected."),
        ts(
            "Tool latency by tool",
            [t(f"histogram_quantile({q}, sum by (tool_name, le) (rate(tool_duration_seconds_bucket{sel()}[{R}])))", "{{tool_name}} p" + str(round(q * 100))) for q in (0.5, 0.95)],
            "s",
            "",
        ),
        bars("Tool calls in range", [t(f"sort_desc(sum by (tool_name, status) (increase(tool_calls_total{sel()}[$__range])))", "{{tool_name}} {{status}}", instant=True)], "short", "", w=24),
    ]
    return dashboard(
        "agentry-agents",
        "Agentry / Agents and tools",
        "Agent runs by type and status, their duration and quality scores, and the tools they call.",
        p,
        extra_vars=[query_var("agent_type", "Agent type", 'label_values(agent_requests_total{job="agentry"}, agent_type)')],
    )


# ---- Knowledge and RAG


RAG = 'agent_type=~"rag|knowledge"'


def knowledge_rag():
    k = 'kind=~"$ingest_kind"'
    emb = f"rate(chunks_embedded_total{sel()}[{R}])"
    reu = f"rate(chunks_reused_total{sel()}[{R}])"
    q_all = f"rate(knowledge_quality_total{sel()}[{R}])"
    q_pass = f"rate(knowledge_quality_total{sel(M_CHECK_PASSED)}[{R}])"
    ans_all = f"rate(cache_requests_total{sel(M_CACHE_ANSWER)}[{R}])"
    ans_hit = f"rate(cache_requests_total{sel(M_CACHE_ANSWER, M_RESULT_HIT)}[{R}])"
    rag_q = f"agent_quality_score_bucket{sel(RAG)}"
    p = [
        row("Now"),
        stat("Chunks embedded (range)", [t(f"sum(increase(chunks_embedded_total{sel()}[$__range]))", instant=True)], "short", "Chunks sent to the embedding model over the dashboard's range.", graph=False),
        stat(
            "Chunk reuse (range)",
            [t(f"sum(increase(chunks_reused_total{sel()}[$__range])) / (sum(increase(chunks_reused_total{sel()}[$__range])) + sum(increase(chunks_embedded_total{sel()}[$__range])))", instant=True)],
            "percentunit",
            "Share of chunks whose embedding was reused from an earlier version instead of computed.",
            graph=False,
        ),
        stat("Ingest jobs queued", [t(f'sum(max by (kind) (job_queue_depth{sel(k, M_STATUS_QUEUED)}))')], "short", "Queued jobs of the selected ingestion kinds."),
        stat(
            "Oldest queued ingest job",
            [t(f"max(jobs_oldest_queued_age_seconds{sel(k)})")],
            "s",
            "",
            thresholds=[(None, "green"), (300, "yellow"), (600, "red")],
        ),
        stat(
            "Quality checks passed (range)",
            [t(f"sum(increase(knowledge_quality_total{sel(M_CHECK_PASSED)}[$__range])) / sum(increase(knowledge_quality_total{sel()}[$__range]))", instant=True)],
            "percentunit",
            "Share of ingested documents that passed their collection's quality checks.",
            thresholds=[(None, "red"), (0.8, "yellow"), (0.95, "green")],
            graph=False,
        ),
        stat("Answer cache hit ratio", [t(f"sum({ans_hit}) / sum({ans_all})")], "percentunit", "Share of knowledge questions answered from the semantic answer cache.", decimals=1),
        row("Ingestion"),
        ts("Chunks / s", [t(f"sum({emb})", "embedded"), t(f"sum({reu})", "reused")], "ops", "Chunks embedded by the model, and chunks whose embedding was reused.", stack=True, w=8),
        ts("Chunk reuse ratio", [t(f"sum({reu}) / (sum({reu}) + sum({emb}))", "reused")], "percentunit", "", w=8, min_=0, max_=1),
        ts("Ingest jobs finished / s", [t(f"sum by (kind, status) (rate(jobs_finished_total{sel(k)}[{R}]))", "{{kind}} {{status}}"), t(f"sum by (kind) (rate(jobs_created_total{sel(k)}[{R}]))", "{{kind}} created")], "ops", "Jobs created, and finished by final status.", w=8),
        ts("Ingest queue depth", [t(f"max by (kind, status) (job_queue_depth{sel(k)})", "{{kind}} {{status}}")], "short", "", w=8),
        ts(
            "Ingest queue age",
            [t(f"max by (kind) (jobs_oldest_queued_age_seconds{sel(k)})", "{{kind}}")],
            "s",
            "Age of the oldest queued job. Alerts above 10 minutes.",
            w=8,
            thresholds=[(None, "green"), (600, "red")],
            threshold_lines=True,
        ),
        ts(
            "Ingest job duration",
            [t(f"histogram_quantile({q}, sum by (kind, le) (rate(job_duration_seconds_bucket{sel(k)}[{R}])))", "{{kind}} p" + str(round(q * 100))) for q in (0.5, 0.95)],
            "s",
            "",
            w=8,
        ),
        ts(
            "Ingest attempts per finished job",
            [t(f"sum by (kind) (rate(job_attempts_total{sel(k)}[{R}])) / sum by (kind) (rate(jobs_finished_total{sel(k)}[{R}]))", "{{kind}}")],
            "short",
            "Above 1 means retries.",
            w=8,
        ),
        row("Quality checks and sources"),
        ts("Quality checks / s", [t(f"sum by (check) ({q_all})", "{{check}}")], "ops", "Documents that passed (\"passed\") or the check they failed.", stack=True, w=8),
        ts("Quality pass ratio", [t(f"sum({q_pass}) / sum({q_all})", "passed")], "percentunit", "", w=8, min_=0, max_=1),
        bars("Failed checks (range)", [t(f'sort_desc(sum by (check) (increase(knowledge_quality_total{sel(M_NOT_CHECK_PASSED)}[$__range])))', "{{check}}", instant=True)], "short", "Documents excluded from search, by the check they failed.", w=8),
        ts("URL fetches / s", [t(f"sum by (outcome) (rate(knowledge_url_fetches_total{sel()}[{R}]))", "{{outcome}}")], "ops", "Documents fetched from URLs, by outcome.", stack=True, w=8),
        ts("Connector pages / s", [t(f"sum by (outcome) (rate(connector_pages_total{sel()}[{R}]))", "{{outcome}}")], "ops", "Pages seen by connector syncs: stored, unchanged, skipped or failed.", stack=True, w=8),
        bars("Connector pages (range)", [t(f"sort_desc(sum by (outcome) (increase(connector_pages_total{sel()}[$__range])))", "{{outcome}}", instant=True)], "short", "", w=8),
        row("Answers"),
        ts("Answer cache", [t(f"sum({ans_hit}) / sum({ans_all})", "hit ratio")], "percentunit", "Share of questions answered from the semantic answer cache.", w=8, min_=0, max_=1),
        ts(
            "Answer cache lookups / s",
            [t(f"sum by (result) ({ans_all})", "{{result}}"), t(f"sum(rate(semantic_cache_invalidations_total{sel()}[{R}]))", "invalidations")],
            "ops",
            "Lookups by result, and cached answers invalidated (their sources changed).",
            w=8,
        ),
        ts("RAG runs / s", [t(f"sum by (status) (rate(agent_requests_total{sel(RAG)}[{R}]))", "{{status}}")], "ops", "Runs of the retrieval-augmented (rag) agent by status.", stack=True, w=8),
        ts(
            "RAG answer quality",
            [t(f"histogram_quantile({q}, sum by (le) (rate({rag_q}[{R}])))", "p" + str(round(q * 100))) for q in (0.1, 0.5, 0.9)],
            "percentunit",
            "Quality score percentiles of the rag agent's answers (bucket resolution 0.1), over at least 30 minutes.",
            min_=0,
            max_=1,
            interval="30m",
        ),
        heatmap("RAG quality distribution", [t(f"sum by (le) (increase({rag_q}[{R}]))", "{{le}}", fmt="heatmap")], "percentunit", "Scored rag runs per score bucket.", interval="5m"),
        ts("RAG run duration", quantiles("agent_run_duration_seconds", sel(RAG), qs=(0.5, 0.95)), "s", "", w=24),
    ]
    return dashboard(
        "agentry-knowledge",
        "Agentry / Knowledge and RAG",
        "Document ingestion (chunks, jobs, quality checks, URL fetches, connectors), the answer cache and the rag agent's answer quality.",
        p,
        extra_vars=[
            query_var(
                "ingest_kind",
                "Ingest job kinds",
                'label_values(job_queue_depth{job="agentry"}, kind)',
                regex="/^(index|summary|ingest)$/",
                all_value=None,
            )
        ],
    )


# ---- Cost and budgets


def cost_budgets():
    m = 'model=~"$model"'
    cost = f"api_cost_dollars{sel(m)}"
    p = [
        row("Now"),
        stat("Spend (range)", [t(f"sum(increase({cost}[$__range]))", instant=True)], "currencyUSD", "Model spend over the dashboard's range.", graph=False, decimals=2),
        stat("Spend rate", [t(f"sum(rate({cost}[1h])) * 3600")], "currencyUSD", "Dollars per hour, averaged over the last hour.", decimals=2),
        stat("30-day projection", [t(f"sum(rate({cost}[1d])) * 86400 * 30")], "currencyUSD", "The last day's spend rate over 30 days.", graph=False, decimals=0),
        stat(
            "Cost per 1k tokens (range)",
            [t(f"sum(increase({cost}[$__range])) / sum(increase(token_usage_total{sel(m)}[$__range])) * 1000", instant=True)],
            "currencyUSD",
            "Blended price of a thousand tokens (input and output).",
            graph=False,
            decimals=4,
        ),
        stat(
            "Budgets exhausted (range)",
            [t(f'sum(increase(budget_alerts_total{sel(M_LEVEL_EXHAUSTED)}[$__range])) or vector(0)', instant=True)],
            "short",
            "Budgets that reached their limit over the dashboard's range.",
            thresholds=[(None, "green"), (1, "red")],
            graph=False,
        ),
        stat(
            "Lowest budget remaining",
            [t(f"min(budget_remaining_dollars{sel()})")],
            "currencyUSD",
            "The smallest remaining amount of any budget, as last seen by a replica.",
            thresholds=[(None, "red"), (0.01, "yellow"), (10, "green")],
            decimals=2,
        ),
        row("Spend"),
        ts("Spend rate by model", [t(f"sum by (model) (rate({cost}[{R}])) * 3600", "{{model}}")], "currencyUSD", "Dollars per hour.", stack=True),
        ts("Spend rate by agent type", [t(f"sum by (agent_type) (rate({cost}[{R}])) * 3600", "{{agent_type}}")], "currencyUSD", "Dollars per hour; \"none\" is plain gateway traffic.", stack=True),
        bars("Spend by model (range)", [t(f"sort_desc(sum by (model) (increase({cost}[$__range])))", "{{model}}", instant=True)], "currencyUSD", "", w=8),
        bars("Spend by agent type (range)", [t(f"sort_desc(sum by (agent_type) (increase({cost}[$__range])))", "{{agent_type}}", instant=True)], "currencyUSD", "", w=8),
        ts(
            "Cost per 1k tokens by model",
            [t(f"sum by (model) (rate({cost}[{R}])) / sum by (model) (rate(token_usage_total{sel(m)}[{R}])) * 1000", "{{model}}")],
            "currencyUSD",
            "Blended price of a thousand tokens.",
            w=8,
        ),
        row("Budgets"),
        table(
            "Budget remaining",
            [t(f"min by (scope, period) (budget_remaining_dollars{sel()})", instant=True, fmt="table")],
            "Remaining amount of each budget in its current period, as last seen by any replica (the lowest value; a replica that has not settled a call since the period began may show an older one).",
            unit="currencyUSD",
            hide=("Time",),
            rename={"Value": "remaining"},
            thresholds=[(None, "red"), (0.01, "yellow"), (10, "green")],
            w=8,
        ),
        ts("Budget remaining over time", [t(f"min by (scope, period) (budget_remaining_dollars{sel()})", "{{scope}} {{period}}")], "currencyUSD", "", w=8),
        ts(
            "Budget alerts",
            [t(f"sum by (scope, level) (increase(budget_alerts_total{sel()}[{R}]))", "{{scope}} {{level}}")],
            "short",
            "Budgets crossing their soft limit (soft) or their limit (exhausted).",
            w=8,
            bars=True,
        ),
        ts("Rate-limited requests / s", [t(f"sum by (tier, dimension) (rate(rate_limited_requests_total{sel()}[{R}]))", "{{tier}} {{dimension}}")], "reqps", "Requests refused by a rate or token limit.", w=24),
        row("Tokens"),
        ts("Tokens / s by model and type", [t(f"sum by (model, type) (rate(token_usage_total{sel(m)}[{R}]))", "{{model}} {{type}}")], "short", "", stack=True),
        bars("Tokens by model (range)", [t(f"sort_desc(sum by (model, type) (increase(token_usage_total{sel(m)}[$__range])))", "{{model}} {{type}}", instant=True)], "short", ""),
    ]
    return dashboard(
        "agentry-cost",
        "Agentry / Cost and budgets",
        "Model spend by model and agent type, projections, budgets and their alerts, and token usage.",
        p,
        extra_vars=[query_var("model", "Model", 'label_values(api_cost_dollars{job="agentry"}, model)')],
        time_from="now-7d",
    )


DASHBOARDS = {
    "platform-overview.json": platform_overview,
    "gateway-models.json": gateway_models,
    "agents-tools.json": agents_tools,
    "knowledge-rag.json": knowledge_rag,
    "cost-budgets.json": cost_budgets,
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n")
        print(OUT / name)


if __name__ == "__main__":
    main()
