#!/usr/bin/env python3
"""Metric names used by Agentry's Grafana dashboards and Prometheus rules.

    promql_names.py names [--dashboards DIR] [--rules DIR]
        Print every metric name the dashboards' queries (and their template
        variables) and the rules' expressions use, one per line, sorted.
        Histogram series suffixes (_bucket, _sum, _count) are stripped;
        recording rules defined in the rules directory and series Prometheus
        makes itself (up, ALERTS, scrape_*) are left out.

    promql_names.py check-names FILE [--dashboards DIR] [--rules DIR]
        Check that every name above appears in FILE (one name per line, e.g.
        the metric families or series names of a real /metrics scrape; lines
        may carry _bucket/_sum/_count suffixes, blank lines and "#" comments
        are ignored). Prints the missing names and exits 1 if any.

    promql_names.py lint-dashboards [--dashboards DIR]
        Check the dashboards' structure: valid JSON, uid/title/schemaVersion,
        the `datasource` and `instance` variables, and every data panel and
        every one of its targets using the ${datasource} data source.

    promql_names.py dashboard-rules [--dashboards DIR]
        Print a Prometheus rule file (JSON, which is YAML) with one recording
        rule per dashboard query, Grafana variables replaced by plausible
        values, so `promtool check rules` can check the queries' syntax.

The PromQL scanner is a tokenizer, not a parser: it drops string literals,
comments, label matchers ({...}), range and subquery brackets ([...]), the
label lists of by/without/on/ignoring/group_left/group_right, numbers and
durations, Grafana variables ($var, ${var}, [[var]]), keywords, and any
identifier followed by "(" (functions and aggregations). What remains are
metric names. A name given only as {__name__="..."} is not seen.

The rule files are read with a minimal YAML reader that understands the
`record:`, `alert:` and `expr:` keys (plain, quoted or block scalars), which
is all it needs; only the Python standard library is used.
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DEFAULT_RULES = ROOT / "deploy" / "prometheus" / "rules"

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Series Prometheus creates itself rather than scraping them from /metrics.
SYNTHETIC = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

KEYWORDS = {
    "and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "atan2", "start", "end",
}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<var>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
    | (?P<num>0[xX][0-9a-fA-F]+
        |(?:\d+(?:ms|[smhdwy]))+
        |(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', re.DOTALL)


def strip_strings_and_comments(expr):
    expr = STRING.sub('""', expr)
    return re.sub(r"#[^\n]*", "", expr)


def tokens(expr):
    out = []
    for m in TOKEN.finditer(strip_strings_and_comments(expr)):
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group()))
    return out


def _skip_group(toks, i, open_, close):
    """toks[i] is `open_`; return the index after its matching `close`."""
    depth = 0
    while i < len(toks):
        kind, text = toks[i]
        if kind == "punct" and text == open_:
            depth += 1
        elif kind == "punct" and text == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def names_in_promql(expr):
    """Metric (and recording rule) names an expression selects, as written."""
    toks = tokens(expr)
    names = set()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else (None, None)
        if kind == "punct" and text == "{":
            i = _skip_group(toks, i, "{", "}")
            continue
        if kind == "punct" and text == "[":
            i = _skip_group(toks, i, "[", "]")
            continue
        if kind == "ident":
            lower = text.lower()
            if lower in LABEL_LIST_KEYWORDS and nxt == ("punct", "("):
                i = _skip_group(toks, i + 1, "(", ")")
                continue
            if lower in KEYWORDS or text in AGGREGATIONS or nxt == ("punct", "("):
                i += 1
                continue
            names.add(text)
        i += 1
    return names


def names_in_variable_query(query):
    """Names in a Grafana Prometheus variable query."""
    query = query.strip()
    m = re.match(r"label_values\s*\((.*)\)\s*$", query, re.DOTALL)
    if m:
        args = m.group(1)
        # label_values(label) has no metric; label_values(selector, label) has one.
        depth, split = 0, None
        for pos, ch in enumerate(args):
            if ch in "({[":
                depth += 1
            elif ch in ")}]":
                depth -= 1
            elif ch == "," and depth == 0:
                split = pos
        return names_in_promql(args[:split]) if split is not None else set()
    m = re.match(r"query_result\s*\((.*)\)\s*$", query, re.DOTALL)
    if m:
        return names_in_promql(m.group(1))
    if re.match(r"(metrics|label_names)\s*\(", query):
        return set()
    return names_in_promql(query)


def base_name(name):
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


# ---------------------------------------------------------------- rule files


def _unquote(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value)
    return value


RULE_KEY = re.compile(r"^(?P<indent>\s*(?:-\s+)?)(?P<key>record|alert|expr):(?:\s+(?P<value>.*))?$")


def read_rules(path):
    """[(kind, name, expr)] for each rule of a Prometheus rule file."""
    lines = pathlib.Path(path).read_text().split("\n")
    rules = []
    current = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = RULE_KEY.match(line)
        if not m or line.lstrip().startswith("#"):
            i += 1
            continue
        key, value, column = m.group("key"), (m.group("value") or "").rstrip(), len(m.group("indent"))
        if value.startswith("#"):
            value = ""
        i += 1
        # Continuation lines: everything indented deeper than the key.
        body = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > column):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        if value[:1] in ("|", ">"):
            indent = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            text = "\n".join(b[indent:] for b in body)
            if value[0] == ">":
                text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)
        else:
            text = " ".join([value] + [b.strip() for b in body if not b.strip().startswith("#")])
            text = _unquote(text)
        if "-" in m.group("indent"):
            # A list item: a new rule (keys of one rule may come in any order).
            current = {}
            rules.append(current)
        if current is not None:
            current[key] = text
    return [("record" if "record" in r else "alert", r.get("record", r.get("alert")), r["expr"]) for r in rules if "expr" in r]


def rule_files(rules_dir):
    return sorted(pathlib.Path(rules_dir).glob("*.yml")) + sorted(pathlib.Path(rules_dir).glob("*.yaml"))


# ---------------------------------------------------------------- dashboards

NO_DATA_PANELS = {"row", "text", "news", "dashlist", "alertlist", "annolist", "welcome"}


def dashboard_files(dashboards_dir):
    return sorted(pathlib.Path(dashboards_dir).glob("*.json"))


def all_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        for inner in panel.get("panels", []) or []:
            yield inner


def dashboard_queries(dashboard):
    """[(where, expr, is_variable_query)]"""
    out = []
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []) or []:
            if target.get("expr"):
                out.append((f'panel "{panel.get("title", "?")}" ({target.get("refId", "?")})', target["expr"], False))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            if query:
                out.append((f'variable "{var.get("name")}"', query, True))
    return out


def load_dashboards(dashboards_dir):
    out = []
    for path in dashboard_files(dashboards_dir):
        out.append((path, json.loads(path.read_text())))
    return out


def is_datasource_var(ref):
    if isinstance(ref, str):
        return ref in ("${datasource}", "$datasource")
    return isinstance(ref, dict) and ref.get("uid") in ("${datasource}", "$datasource")


def lint_dashboards(dashboards_dir):
    problems = []
    uids = {}
    files = dashboard_files(dashboards_dir)
    if not files:
        problems.append(f"{dashboards_dir}: no dashboards")
    for path in files:
        name = path.name
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problems.append(f"{name}: invalid JSON: {error}")
            continue
        for key in ("uid", "title", "schemaVersion", "panels", "templating"):
            if key not in d or d[key] in (None, ""):
                problems.append(f"{name}: no {key}")
        if d.get("uid") in uids:
            problems.append(f"{name}: uid {d.get('uid')!r} also used by {uids[d['uid']]}")
        uids[d.get("uid")] = name
        variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
        ds = variables.get("datasource")
        if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
            problems.append(f"{name}: no `datasource` variable of type datasource (prometheus)")
        inst = variables.get("instance")
        inst_query = inst and (inst.get("query", {}).get("query") if isinstance(inst.get("query"), dict) else inst.get("query"))
        if not inst or inst.get("type") != "query" or not re.fullmatch(r"\s*label_values\(\s*agentry_build_info\s*,\s*instance\s*\)\s*", inst_query or ""):
            problems.append(f"{name}: no `instance` variable from label_values(agentry_build_info, instance)")
        for var in variables.values():
            if var.get("type") == "query" and not is_datasource_var(var.get("datasource")):
                problems.append(f'{name}: variable "{var.get("name")}" does not use ${{datasource}}')
        ids = set()
        for panel in all_panels(d):
            title = panel.get("title", "?")
            if panel.get("id") in ids:
                problems.append(f'{name}: panel "{title}": duplicate id {panel.get("id")}')
            ids.add(panel.get("id"))
            if panel.get("type") in NO_DATA_PANELS:
                continue
            if not is_datasource_var(panel.get("datasource")):
                problems.append(f'{name}: panel "{title}": datasource is not ${{datasource}}')
            targets = panel.get("targets") or []
            if not targets:
                problems.append(f'{name}: panel "{title}": no targets')
            refs = set()
            for target in targets:
                ref = target.get("refId")
                if ref in refs:
                    problems.append(f'{name}: panel "{title}": duplicate refId {ref}')
                refs.add(ref)
                if not is_datasource_var(target.get("datasource")):
                    problems.append(f'{name}: panel "{title}" target {ref}: datasource is not ${{datasource}}')
                if not (target.get("expr") or "").strip():
                    problems.append(f'{name}: panel "{title}" target {ref}: no expr')
    return problems


# Values for Grafana's variables when checking the queries' syntax.
GRAFANA_VALUES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}


def substitute_grafana_variables(expr):
    def value(name):
        return GRAFANA_VALUES.get(name, ".*")

    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}", lambda m: value(m.group(1)), expr)
    expr = re.sub(r"\[\[(\w+)\]\]", lambda m: value(m.group(1)), expr)
    return re.sub(r"\$(\w+)", lambda m: value(m.group(1)), expr)


# ---------------------------------------------------------------- commands


def collect_names(dashboards_dir, rules_dir, include_synthetic=False):
    """(names, origins): base metric names and where each is used."""
    defined = set()
    used = []  # (name, where)
    for path in rule_files(rules_dir):
        for kind, name, expr in read_rules(path):
            if kind == "record":
                defined.add(name)
            for n in names_in_promql(expr or ""):
                used.append((n, f"{path.name}: {kind} {name}"))
    for path, d in load_dashboards(dashboards_dir):
        for where, expr, is_var in dashboard_queries(d):
            found = names_in_variable_query(expr) if is_var else names_in_promql(expr)
            for n in found:
                used.append((n, f"{path.name}: {where}"))
    origins = {}
    for n, where in used:
        if n in defined or (n in SYNTHETIC and not include_synthetic):
            continue
        origins.setdefault(base_name(n), []).append(where)
    return sorted(origins), origins


def read_name_file(path):
    names = set()
    for line in pathlib.Path(path).read_text().split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split()[0].split("{")[0]
        names.add(name)
        names.add(base_name(name))
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["names", "check-names", "lint-dashboards", "dashboard-rules"])
    parser.add_argument("file", nargs="?", help="check-names: the file of metric names")
    parser.add_argument("--dashboards", default=str(DEFAULT_DASHBOARDS))
    parser.add_argument("--rules", default=str(DEFAULT_RULES))
    parser.add_argument("--include-synthetic", action="store_true", help="names: also list series Prometheus makes (up, ...)")
    args = parser.parse_args(argv)

    if args.command == "names":
        names, _ = collect_names(args.dashboards, args.rules, args.include_synthetic)
        print("\n".join(names))
        return 0

    if args.command == "check-names":
        if not args.file:
            parser.error("check-names needs the file of metric names")
        available = read_name_file(args.file)
        names, origins = collect_names(args.dashboards, args.rules)
        missing = [n for n in names if n not in available]
        for n in missing:
            where = sorted(set(origins[n]))
            print(f"missing metric: {n}  (used by {where[0]}{f' and {len(where) - 1} more' if len(where) > 1 else ''})")
        if missing:
            print(f"{len(missing)} of {len(names)} metric names used by the dashboards and rules are not in {args.file}", file=sys.stderr)
            return 1
        print(f"all {len(names)} metric names used by the dashboards and rules are in {args.file}", file=sys.stderr)
        return 0

    if args.command == "lint-dashboards":
        problems = lint_dashboards(args.dashboards)
        for p in problems:
            print(p)
        if problems:
            return 1
        count = len(dashboard_files(args.dashboards))
        print(f"{count} dashboards: structure OK", file=sys.stderr)
        return 0

    if args.command == "dashboard-rules":
        rules = []
        for path, d in load_dashboards(args.dashboards):
            for where, expr, is_var in dashboard_queries(d):
                if is_var:
                    inner = re.match(r"\s*(?:label_values\s*\((.*),\s*\w+\s*\)|query_result\s*\((.*)\))\s*$", expr, re.DOTALL)
                    if not inner:
                        continue
                    expr = inner.group(1) or inner.group(2)
                rules.append({"record": "dashboard:query", "expr": substitute_grafana_variables(expr), "labels": {"source": f"{path.name}: {where}"}})
        print(json.dumps({"groups": [{"name": "dashboard-queries", "rules": rules}]}, indent=1))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
