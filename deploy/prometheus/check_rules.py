#!/usr/bin/env python3
"""Checks deploy/prometheus/alerts.yml without promtool (not in the registries this project uses).

- the file has Prometheus' rule-file shape: groups with a name and rules; each rule an alert
  with expr, and only the keys Prometheus accepts (for, keep_firing_for, labels, annotations);
  durations in Prometheus' syntax;
- every expr parses as PromQL (promql-parser, the GreptimeDB parser, from PyPI);
- every relay_* metric an expr names is exported by relay-server: the names are read from a
  /metrics text given as the first argument (the Rust test renders one).

Usage: check_rules.py METRICS_TEXT_FILE [RULES_FILE]
"""
import pathlib
import re
import sys

import promql_parser
import yaml

DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}


def main() -> int:
    metrics_text = pathlib.Path(sys.argv[1]).read_text()
    rules_path = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else pathlib.Path(__file__).with_name("alerts.yml"))
    exported = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            exported.add(name)
            if kind == "counter":
                exported.add(name + "_total")
        elif line and not line.startswith("#"):
            exported.add(re.split(r"[{ ]", line, 1)[0])
    doc = yaml.safe_load(rules_path.read_text())
    errors = []
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        errors.append("top level: 'groups' must be a non-empty list")
        groups = []
    alerts = 0
    for g in groups:
        gname = g.get("name")
        if not gname:
            errors.append("a group without a name")
        for r in g.get("rules") or []:
            where = f"{gname}/{r.get('alert', '?')}"
            extra = set(r) - RULE_KEYS
            if extra:
                errors.append(f"{where}: unknown keys {sorted(extra)}")
            if not r.get("alert") or not r.get("expr"):
                errors.append(f"{where}: needs alert and expr")
                continue
            for k in ("for", "keep_firing_for"):
                if k in r and not DURATION.match(str(r[k])):
                    errors.append(f"{where}: {k} {r[k]!r} is not a Prometheus duration")
            for k in ("labels", "annotations"):
                if k in r and not all(isinstance(v, str) for v in r[k].values()):
                    errors.append(f"{where}: every {k} value must be a string")
            try:
                promql_parser.parse(r["expr"])
            except Exception as e:  # noqa: BLE001 - report every unparsable expression
                errors.append(f"{where}: expr does not parse: {e}")
            for name in re.findall(r"\brelay_[a-z0-9_]+", r["expr"]):
                if name not in exported:
                    errors.append(f"{where}: metric {name} is not exported by relay-server")
            alerts += 1
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{rules_path}: {alerts} alert rules checked, {len(errors)} problems")
    return 1 if errors or alerts == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
