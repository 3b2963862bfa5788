#!/usr/bin/env python3
"""Checks that every metric the deployment relies on is one the services export, and that rendering is complete.

    metrics_check.py --rendered DIR

Known metrics are the `pub const NAME: &str = "chatsdk_…";` of platform/src/metrics.rs. Allowed beside them:
  - a known name + `_bucket`, `_sum` or `_count` (histogram series);
  - a name prometheus-adapter exposes (monitoring/prometheus-adapter-values.yaml), if its rule's series is known
    and the name is that series' own name or the series with `_total` turned into `_per_second`.
Checked:
  - the adapter rules (seriesQuery and metricsQuery names, exposed names);
  - every PromQL expression and query of monitoring/grafana-dashboard.json;
  - the HorizontalPodAutoscalers in DIR: every Pods/Object metric is one the adapter exposes;
  - every `chatsdk_…` word anywhere in DIR (comments included, so they cannot go stale);
  - no `${…}` anywhere in DIR (a placeholder render did not fill).
Exits 1 and lists every problem.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parent.parent
REPO = K8S.parent.parent
METRICS_RS = REPO / "platform" / "src" / "metrics.rs"
ADAPTER = K8S / "monitoring" / "prometheus-adapter-values.yaml"
DASHBOARD = K8S / "monitoring" / "grafana-dashboard.json"

CONST = re.compile(r'pub\s+const\s+[A-Z0-9_]+\s*:\s*&str\s*=\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"\s*;')
WORD = re.compile(r"(?<![A-Za-z0-9_])chatsdk_[a-z0-9_]+")
SERIES = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")
PLACEHOLDER = re.compile(r"\$\{[^}\n]*\}?")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def known_metrics(source: str) -> set[str]:
    return set(CONST.findall(source))


def series_name(name: str, known: set[str]) -> bool:
    return name in known or any(name.endswith(s) and name[: -len(s)] in known for s in HISTOGRAM_SUFFIXES)


def adapter_names(adapter: dict, known: set[str], problems: list[str]) -> set[str]:
    """The metric names the adapter exposes; reports rules built on unknown series."""
    exposed = set()
    rules = ((adapter or {}).get("rules") or {}).get("custom") or []
    if not rules:
        problems.append(f"{ADAPTER.name}: no rules.custom")
    for index, rule in enumerate(rules):
        where = f"{ADAPTER.name} rules.custom[{index}]"
        match = SERIES.match(str(rule.get("seriesQuery", "")))
        if not match or match.group(1) not in known:
            problems.append(f"{where}: seriesQuery {rule.get('seriesQuery')!r} is not a metric of {METRICS_RS.name}")
            continue
        series = match.group(1)
        for word in WORD.findall(str(rule.get("metricsQuery", ""))):
            if not series_name(word, known):
                problems.append(f"{where}: metricsQuery names {word}, not a metric of {METRICS_RS.name}")
        name = rule.get("name") or {}
        matches = str(name.get("matches", f"^{series}$"))
        if not re.search(matches, series):
            problems.append(f"{where}: name.matches {matches!r} does not match its series {series}")
        exposed_name = str(name.get("as") or series)
        derived = {series}
        if series.endswith("_total"):
            derived.add(series[: -len("_total")] + "_per_second")
        if exposed_name not in derived:
            problems.append(f"{where}: exposes {exposed_name}, which is neither {series} nor derived from it "
                            f"({', '.join(sorted(derived))})")
            continue
        exposed.add(exposed_name)
    return exposed


def dashboard_expressions(node: object) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, str):
                found.append(value)
            else:
                found += dashboard_expressions(value)
    elif isinstance(node, list):
        for item in node:
            found += dashboard_expressions(item)
    return found


def check_dashboard(dashboard: dict, known: set[str], problems: list[str]) -> int:
    expressions = dashboard_expressions(dashboard)
    if not expressions:
        problems.append(f"{DASHBOARD.name}: no PromQL expression found")
    for expression in expressions:
        for word in WORD.findall(expression):
            if not series_name(word, known):
                problems.append(f"{DASHBOARD.name}: {word} (in {expression!r}) is not a metric of {METRICS_RS.name}")
    return len(expressions)


def check_rendered(directory: Path, known: set[str], exposed: set[str], problems: list[str]) -> int:
    files = sorted(directory.glob("*.yaml"))
    if not files:
        problems.append(f"{directory}: no rendered .yaml files")
    hpas = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            for placeholder in PLACEHOLDER.findall(line):
                problems.append(f"{path.name}:{number}: {placeholder} left after rendering")
            for word in WORD.findall(line):
                if not (series_name(word, known) or word in exposed):
                    problems.append(f"{path.name}:{number}: {word} is not a metric of {METRICS_RS.name} "
                                    "nor one the adapter exposes")
        for document in yaml.safe_load_all(text):
            if not isinstance(document, dict) or document.get("kind") != "HorizontalPodAutoscaler":
                continue
            hpas += 1
            name = (document.get("metadata") or {}).get("name")
            for metric in (document.get("spec") or {}).get("metrics") or []:
                kind = metric.get("type")
                if kind in ("Pods", "Object", "External"):
                    source = metric.get(kind[0].lower() + kind[1:]) or {}
                    metric_name = (source.get("metric") or {}).get("name")
                    if metric_name not in exposed:
                        problems.append(f"{path.name}: HorizontalPodAutoscaler {name}: {kind} metric {metric_name!r} "
                                        f"is not one prometheus-adapter exposes ({', '.join(sorted(exposed))})")
    return hpas


def run(rendered: Path, metrics_source: str, adapter: dict, dashboard: dict) -> tuple[list[str], str]:
    problems: list[str] = []
    known = known_metrics(metrics_source)
    if not known:
        problems.append(f"{METRICS_RS}: no metric names found")
    exposed = adapter_names(adapter, known, problems)
    expressions = check_dashboard(dashboard, known, problems)
    hpas = check_rendered(rendered, known, exposed, problems)
    summary = (f"{len(known)} metrics in {METRICS_RS.name}; adapter exposes {', '.join(sorted(exposed))}; "
               f"{expressions} dashboard expressions, {hpas} HPAs checked")
    return problems, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rendered", type=Path, required=True, metavar="DIR", help="output of infra/k8s/render")
    args = parser.parse_args(argv)
    problems, summary = run(
        args.rendered,
        METRICS_RS.read_text(encoding="utf-8"),
        yaml.safe_load(ADAPTER.read_text(encoding="utf-8")),
        json.loads(DASHBOARD.read_text(encoding="utf-8")),
    )
    for problem in problems:
        print(f"metrics_check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"metrics_check: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
