"""Static checks of deploy/ that no off-the-shelf validator does; run by
deploy/check (see there). Needs PyYAML; TOML checks need Python 3.11+
(tomllib).

    python3 deploy/check_static.py compose | helm | otel | config-keys

Each command prints `ok:`, `WARN:` and `FAIL:` lines and exits 1 if anything
failed (warnings count as failures when DEPLOY_CHECK_STRICT=1).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = None

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
CONFIGURATION_RS = REPO / "crates/agentry-server/src/configuration.rs"
AGENTRY_IMAGE = "agentry:local"
# Bind-mounted directories that other files fill; Compose creates an empty
# directory when one is missing, which is harmless for these.
OPTIONAL_BIND_DIRS = {"./grafana/dashboards", "./prometheus/rules", "./grafana/provisioning"}


class Report:
    def __init__(self) -> None:
        self.failed = 0
        self.warned = 0

    def ok(self, message: str) -> None:
        print(f"ok: {message}")

    def fail(self, message: str) -> None:
        print(f"FAIL: {message}")
        self.failed += 1

    def warn(self, message: str) -> None:
        print(f"WARN: {message}")
        self.warned += 1

    def check(self, condition: bool, good: str, bad: str) -> None:
        if condition:
            self.ok(good)
        else:
            self.fail(bad)

    def exit_code(self) -> int:
        strict = os.environ.get("DEPLOY_CHECK_STRICT") == "1"
        return 1 if self.failed or (strict and self.warned) else 0


def load_yaml(path: Path):
    with path.open() as f:
        return yaml.safe_load(f)


# ------------------------------------------------------------------ compose --


def compose(report: Report) -> None:
    path = DEPLOY / "compose.yaml"
    doc = load_yaml(path)
    services = doc.get("services", {})
    declared = {kind: set((doc.get(kind) or {}).keys()) for kind in ("volumes", "networks", "secrets")}

    problems = []
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for target in depends if isinstance(depends, list) else depends.keys():
            if target not in services:
                problems.append(f"{name}: depends_on unknown service {target}")
        for network in service.get("networks") or []:
            if network not in declared["networks"]:
                problems.append(f"{name}: undeclared network {network}")
        for secret in service.get("secrets") or []:
            secret = secret if isinstance(secret, str) else secret.get("source")
            if secret not in declared["secrets"]:
                problems.append(f"{name}: undeclared secret {secret}")
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                if not (DEPLOY / source).exists():
                    if source.rstrip("/") in OPTIONAL_BIND_DIRS:
                        report.warn(f"{name}: bind source {source} does not exist yet (Compose would create it empty)")
                    else:
                        problems.append(f"{name}: bind source {source} does not exist")
            elif source and source not in declared["volumes"]:
                problems.append(f"{name}: undeclared volume {source}")
        build = service.get("build")
        if isinstance(build, dict):
            context = (DEPLOY / build.get("context", ".")).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: build dockerfile {dockerfile} does not exist")
    for problem in problems:
        report.fail(problem)
    if not problems:
        report.ok("compose.yaml: depends_on, volumes, networks, secrets and build paths resolve")

    # Every ${NAME:?...} that compose.yaml requires is documented in .env.example.
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", path.read_text()))
    example = DEPLOY / ".env.example"
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example.read_text(), re.M)) if example.exists() else set()
    missing = sorted(required - documented)
    report.check(
        not missing,
        f".env.example lists every required variable ({', '.join(sorted(required))})",
        f".env.example lacks {', '.join(missing)}",
    )

    # nginx's upstream and Prometheus' targets are exactly the serving replicas.
    replicas = {n for n, s in services.items() if s.get("image") == AGENTRY_IMAGE and "command" not in s}
    nginx = set(re.findall(r"^\s*server\s+([\w.-]+):8080\b", (DEPLOY / "nginx/agentry.conf").read_text(), re.M))
    report.check(nginx == replicas, f"nginx upstream servers = agentry replicas ({', '.join(sorted(replicas))})",
                 f"nginx upstream servers {sorted(nginx)} != agentry replicas {sorted(replicas)}")
    prometheus = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    jobs = {job["job_name"]: job for job in prometheus.get("scrape_configs", [])}
    targets = set()
    for static in jobs.get("agentry", {}).get("static_configs", []):
        targets |= {t.rsplit(":", 1)[0] for t in static.get("targets", [])}
    report.check(targets == replicas, "prometheus job agentry scrapes every replica",
                 f"prometheus job agentry targets {sorted(targets)} != agentry replicas {sorted(replicas)}")


# --------------------------------------------------------------------- helm --


def braces_balanced(text: str) -> str | None:
    """None when every {{ is closed by a }} before the next {{ opens."""
    opened = None

    def line(offset: int) -> int:
        return text.count("\n", 0, offset) + 1

    for match in re.finditer(r"\{\{|\}\}", text):
        if match.group() == "{{":
            if opened is not None:
                return f"'{{{{' on line {line(opened)} is not closed before the '{{{{' on line {line(match.start())}"
            opened = match.start()
        else:
            if opened is None:
                return f"'}}}}' on line {line(match.start())} closes nothing"
            opened = None
    return f"'{{{{' on line {line(opened)} is never closed" if opened is not None else None


def manifest_kinds(paths) -> set[str]:
    kinds = set()
    for path in paths:
        kinds |= set(re.findall(r"^kind:\s*(\w+)\s*$", Path(path).read_text(), re.M))
    return kinds


def helm(report: Report) -> None:
    chart = DEPLOY / "helm/agentry"
    plain = DEPLOY / "kubernetes"

    for path in [chart / "Chart.yaml", chart / "values.yaml", *sorted((chart / "ci").glob("*.yaml"))]:
        try:
            load_yaml(path)
            report.ok(f"{path.relative_to(DEPLOY)} parses as YAML")
        except yaml.YAMLError as e:
            report.fail(f"{path.relative_to(DEPLOY)}: {e}")

    meta = load_yaml(chart / "Chart.yaml")
    missing = [k for k in ("apiVersion", "name", "version", "appVersion") if not meta.get(k)]
    report.check(meta.get("apiVersion") == "v2" and not missing, "Chart.yaml: apiVersion v2 with name, version, appVersion",
                 f"Chart.yaml: apiVersion must be v2 and these present: {missing}")

    templates = sorted((chart / "templates").glob("*"))
    for path in templates:
        problem = braces_balanced(path.read_text())
        if problem:
            report.fail(f"templates/{path.name}: {problem}")
    if templates:
        report.ok(f"every '{{{{' has its '}}}}' in {len(templates)} template files")

    template_kinds = manifest_kinds(p for p in templates if p.suffix == ".yaml")
    plain_kinds = manifest_kinds(p for p in plain.glob("*.yaml") if p.name != "kustomization.yaml")
    report.check(template_kinds == plain_kinds, f"template kinds = plain manifest kinds ({', '.join(sorted(plain_kinds))})",
                 f"only in templates: {sorted(template_kinds - plain_kinds)}; only in deploy/kubernetes: {sorted(plain_kinds - template_kinds)}")

    values = load_yaml(chart / "values.yaml")
    toml_text = values.get("config", "")
    configmap = next(d for d in yaml.safe_load_all((plain / "configmap.yaml").read_text()) if d)
    for label, text in (("values.yaml config", toml_text), ("kubernetes/configmap.yaml agentry.toml", configmap["data"]["agentry.toml"])):
        if tomllib is None:
            report.warn(f"{label}: not parsed (tomllib needs Python 3.11+)")
            continue
        try:
            tomllib.loads(text)
            report.ok(f"{label} parses as TOML")
        except tomllib.TOMLDecodeError as e:
            report.fail(f"{label}: {e}")
    report.check(toml_text == configmap["data"]["agentry.toml"],
                 "values.yaml config = kubernetes/configmap.yaml agentry.toml",
                 "values.yaml config and kubernetes/configmap.yaml agentry.toml differ (keep them the same)")

    rendered = os.environ.get("DEPLOY_HELM_RENDERED")
    if rendered:
        kinds = manifest_kinds([rendered])
        report.check(kinds == plain_kinds, f"rendered chart (ci/default-values.yaml) has the kinds {', '.join(sorted(kinds))}",
                     f"rendered chart kinds {sorted(kinds)} != plain manifest kinds {sorted(plain_kinds)}")


# --------------------------------------------------------------------- otel --


def otel(report: Report) -> None:
    doc = load_yaml(DEPLOY / "otel-collector.yaml")
    service = doc.get("service", {})
    problems = []
    for extension in service.get("extensions", []):
        if extension not in (doc.get("extensions") or {}):
            problems.append(f"service.extensions: {extension} is not defined")
    for name, pipeline in (service.get("pipelines") or {}).items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                if component not in (doc.get(kind) or {}):
                    problems.append(f"pipeline {name}: {kind[:-1]} {component} is not defined")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"pipeline {name} needs receivers and exporters")
    for problem in problems:
        report.fail(f"otel-collector.yaml: {problem}")
    if not problems:
        report.ok("otel-collector.yaml: every component a pipeline names is defined")
    endpoints = {p: (doc["receivers"]["otlp"]["protocols"].get(p) or {}).get("endpoint", "") for p in ("grpc", "http")}
    report.check(endpoints["grpc"].endswith(":4317") and endpoints["http"].endswith(":4318"),
                 "otlp receiver: grpc on 4317, http on 4318", f"otlp receiver endpoints {endpoints}")


# -------------------------------------------------------------- config keys --


def settings_fields(source: str) -> dict[str, dict[str, str]]:
    """struct name -> {field: type} for the structs in configuration.rs."""
    structs = {}
    for match in re.finditer(r"pub struct (\w+) \{\n(.*?)\n\}", source, re.S):
        fields = dict(re.findall(r"^\s*pub (\w+): ([^,\n]+),", match.group(2), re.M))
        structs[match.group(1)] = fields
    return structs


def key_problem(path: list[str], structs: dict[str, dict[str, str]]) -> str | None:
    """Why `path` (lower-case key segments) is not a configuration key, or None.
    Segments below a type defined outside configuration.rs are not checked."""
    struct = "Settings"
    for depth, segment in enumerate(path):
        fields = structs.get(struct)
        if fields is None:
            return None
        if depth == 0 and segment in ("config", "bootstrap_password"):
            return None  # read by the binary, ignored by configuration
        if segment not in fields:
            return f"`{'.'.join(path[: depth + 1])}` is not a field of {struct}"
        ty = fields[segment].strip()
        ty = re.sub(r"^Option<(.*)>$", r"\1", ty)
        struct = ty if re.fullmatch(r"\w+", ty) else ""
    return None


def config_keys(report: Report) -> None:
    if not CONFIGURATION_RS.exists():
        report.warn(f"{CONFIGURATION_RS} not found: configuration keys not checked")
        return
    structs = settings_fields(CONFIGURATION_RS.read_text())
    if "Settings" not in structs:
        report.warn("no `pub struct Settings` in configuration.rs: configuration keys not checked")
        return

    env_names: dict[str, set[str]] = {}

    def add(origin: str, name: str) -> None:
        env_names.setdefault(name, set()).add(origin)

    doc = load_yaml(DEPLOY / "compose.yaml")
    for service_name, service in doc["services"].items():
        if service.get("image") == AGENTRY_IMAGE:
            env = service.get("environment") or {}
            for name in env if isinstance(env, dict) else (e.split("=", 1)[0] for e in env):
                add(f"compose.yaml {service_name}", name)
    secret = next(d for d in yaml.safe_load_all((DEPLOY / "kubernetes/secret.yaml").read_text()) if d)
    for name in secret.get("stringData", {}):
        add("kubernetes/secret.yaml", name)
    for path in (DEPLOY / "kubernetes/deployment.yaml", DEPLOY / "helm/agentry/templates/deployment.yaml",
                 DEPLOY / "helm/agentry/templates/secret.yaml"):
        for name in re.findall(r"(?:name: |^\s*)(AGENTRY_\w+)", path.read_text(), re.M):
            add(str(path.relative_to(DEPLOY)), name)

    bad = 0
    for name, origins in sorted(env_names.items()):
        where = ", ".join(sorted(origins))
        if not name.startswith("AGENTRY_"):
            report.fail(f"{name} ({where}): agentry containers get only AGENTRY_* configuration keys")
            bad += 1
            continue
        problem = key_problem(name[len("AGENTRY_"):].lower().split("__"), structs)
        if problem:
            # Keys whose support is still being added show up here first.
            report.warn(f"{name} ({where}): {problem} (crates/agentry-server/src/configuration.rs)")
            bad += 1
    if not bad:
        report.ok(f"{len(env_names)} AGENTRY_* variables name configuration keys")

    if tomllib is None:
        report.warn("TOML keys not checked (tomllib needs Python 3.11+)")
        return
    configmap = next(d for d in yaml.safe_load_all((DEPLOY / "kubernetes/configmap.yaml").read_text()) if d)
    table = tomllib.loads(configmap["data"]["agentry.toml"])
    problems = []

    def walk(prefix: list[str], value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                problem = key_problem(prefix + [key], structs)
                if problem:
                    problems.append(problem)
                else:
                    walk(prefix + [key], inner)

    walk([], table)
    for problem in problems:
        report.warn(f"kubernetes/configmap.yaml agentry.toml: {problem}")
    if not problems:
        report.ok("agentry.toml (ConfigMap, values.yaml) uses only configuration keys")


COMMANDS = {"compose": compose, "helm": helm, "otel": otel, "config-keys": config_keys}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(COMMANDS)}")
    report = Report()
    COMMANDS[sys.argv[1]](report)
    sys.exit(report.exit_code())
