#!/usr/bin/env python3
"""Validates the custom resources of rendered manifests, which kubernetes-validate only warns about.

    validate_crs.py [--kubernetes-version 1.33.0] DIR_OR_FILE...

For every document of every rendered .yaml file:
  - a kind Kubernetes itself defines (kubernetes-validate has its schema) is validated with kubernetes-validate;
  - a custom resource is validated against crd-schemas/<group>_<version>_<Kind>.json, our hand-written subset of
    its CRD; a custom kind without such a schema is an error (a new operator's CRD needs a schema first);
  - and cross-checks the schemas cannot express:
      ExternalSecret: the template uses exactly the keys its `data` fetches; it names a SecretStore we render;
        templates of TOML files render (with awkward sample values, through a model of the ESO functions we use)
        to TOML whose secrets survive the round trip, with librdkafka's dotted properties as quoted keys of
        [kafka.properties]; a PgBouncer userlist's quoting survives it too;
      SecretStore: its jwt service account is one we render;
      ServiceMonitor: it selects a Service we render that has the named port.
Exits 1 and lists every problem, else prints a summary.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
import urllib.parse
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError

SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"

# Awkward sample secrets: a quote, a backslash, URL delimiters, TOML/HTML-special characters.
SAMPLE_SUFFIX = '-s3cr"t\\%+:@/#?&<>'
KAFKA_PROPERTIES = {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512"}
KAFKA_SECRET_PROPERTIES = ("sasl.username", "sasl.password")
ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.DOTALL)
FIELD = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)$")
GO_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


class Problems(list):
    def add(self, where: str, message: str) -> None:
        self.append(f"{where}: {message}")


def documents(paths: list[Path]) -> list[tuple[str, dict]]:
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    found = []
    for file in files:
        for index, document in enumerate(yaml.safe_load_all(file.read_text(encoding="utf-8"))):
            if document is not None:
                found.append((f"{file.name}#{index}", document))
    return found


def name_of(document: dict) -> str:
    metadata = document.get("metadata") or {}
    return f"{document.get('kind')}/{metadata.get('name')}"


def schema_path(document: dict) -> Path:
    group, _, version = str(document.get("apiVersion", "")).rpartition("/")
    return SCHEMAS / f"{group or 'core'}_{version}_{document.get('kind')}.json"


def check_schema(where: str, document: dict, kubernetes_version: str, problems: Problems) -> bool:
    """True when the document is a custom resource (validated here), False for a built-in kind."""
    try:
        kubernetes_validate.validate(document, kubernetes_version, strict=True)
        return False
    except SchemaNotFoundError:
        pass
    except jsonschema.ValidationError as error:
        problems.add(where, f"{name_of(document)}: {error.message} (at {'/'.join(map(str, error.absolute_path))})")
        return False
    path = schema_path(document)
    if not path.is_file():
        problems.add(where, f"{name_of(document)}: unknown kind {document.get('apiVersion')} {document.get('kind')} "
                            f"(no schema {path.name} in {SCHEMAS.name}/)")
        return True
    validator = jsonschema.Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path))):
        location = "/".join(map(str, error.absolute_path)) or "(top)"
        problems.add(where, f"{name_of(document)}: {location}: {error.message}")
    return True


# --- A model of the ESO template functions we use (engine v2: Go text/template + sprig) ---

def go_to_json(value: str) -> str:
    # sprig's toJson is Go's json.Marshal, which also escapes <, > and & for HTML.
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_urlquery(value: str) -> str:
    # Go's url.QueryEscape: everything but [A-Za-z0-9-_.~] percent-encoded, space as '+'.
    return urllib.parse.quote_plus(value, safe="")


def evaluate(expression: str, values: dict[str, str]) -> tuple[str, set[str]]:
    """Evaluates `.key | fn args | ...`; returns the text and the keys used. Raises ValueError."""
    stages = [stage.strip() for stage in expression.split("|")]
    head = FIELD.match(stages[0])
    if not head:
        raise ValueError(f"unsupported template action {{{{ {expression} }}}} (only `.key | function ...`)")
    key = head.group(1)
    if key not in values:
        raise ValueError(f"the template uses .{key}, which spec.data does not fetch")
    value = values[key]
    for stage in stages[1:]:
        function, _, rest = stage.partition(" ")
        args = [json.loads(literal) for literal in GO_STRING.findall(rest)]
        if function == "toString" and not args:
            pass
        elif function == "toJson" and not args:
            value = go_to_json(value)
        elif function == "urlquery" and not args:
            value = go_urlquery(value)
        elif function == "replace" and len(args) == 2:
            value = value.replace(args[0], args[1])
        else:
            raise ValueError(f"function {stage!r} is not modelled by this check; add it to evaluate()")
    return value, {key}


def render_template(text: str, values: dict[str, str]) -> tuple[str, set[str]]:
    used: set[str] = set()

    def action(match: re.Match) -> str:
        value, keys = evaluate(match.group(1), values)
        used.update(keys)
        return value

    return ACTION.sub(action, text), used


def check_toml(where: str, text: str, samples: dict[str, str], problems: Problems) -> None:
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        problems.add(where, f"does not render to valid TOML: {error}")
        return
    secrets = set(samples.values())
    properties = parsed.get("kafka", {}).get("properties")
    if properties is not None:
        for key, expected in KAFKA_PROPERTIES.items():
            if properties.get(key) != expected:
                problems.add(where, f'[kafka.properties] needs "{key}" = "{expected}" (a quoted key)')
        for key in KAFKA_SECRET_PROPERTIES:
            if properties.get(key) not in secrets:
                problems.add(where, f'[kafka.properties] "{key}" does not survive the round trip of a secret value')
        for key in properties:
            if "." not in key:
                problems.add(where, f"[kafka.properties] {key!r}: librdkafka property names have dots; quote them")
    if "kafka" in parsed and set(parsed["kafka"]) - {"properties"}:
        problems.add(where, f"[kafka] has {sorted(set(parsed['kafka']) - {'properties'})}: dotted librdkafka "
                            "properties must be quoted keys of [kafka.properties]")
    url = parsed.get("postgres", {}).get("url")
    if url is not None:
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("postgres", "postgresql") or not parts.hostname or port is None:
            problems.add(where, f"postgres.url {url!r} is not postgres://user:password@host:port/db")
        elif urllib.parse.unquote(parts.password or "") not in secrets or \
                urllib.parse.unquote(parts.username or "") not in secrets:
            problems.add(where, "postgres.url: the user or password does not survive the round trip (urlquery them)")
    for section, table in parsed.items():
        for key, value in (table.items() if isinstance(table, dict) else []):
            if key == "admin_token" and value not in secrets:
                problems.add(where, f"[{section}] admin_token does not survive the round trip (toJson it)")


def check_userlist(where: str, text: str, samples: dict[str, str], problems: Problems) -> None:
    secrets = set(samples.values())
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        fields = re.fullmatch(r'\s*"((?:[^"]|"")*)"\s+"((?:[^"]|"")*)"\s*', line)
        if not fields:
            problems.add(where, f"userlist line is not two quoted fields (double any quote inside): {line!r}")
            continue
        for field in fields.groups():
            if field.replace('""', '"') not in secrets:
                problems.add(where, "a userlist field does not survive the round trip of a secret value")


def check_external_secret(where: str, document: dict, rendered: list[dict], problems: Problems) -> None:
    spec = document.get("spec") or {}
    ref = spec.get("secretStoreRef") or {}
    namespace = (document.get("metadata") or {}).get("namespace")
    if ref.get("kind", "SecretStore") == "SecretStore" and not any(
        other.get("kind") == "SecretStore" and other.get("metadata", {}).get("name") == ref.get("name")
        and other.get("metadata", {}).get("namespace") == namespace for other in rendered
    ):
        problems.add(where, f"{name_of(document)}: secretStoreRef {ref.get('name')!r} is not a SecretStore we render")
    keys = [entry.get("secretKey") for entry in spec.get("data") or [] if isinstance(entry, dict)]
    for key in {key for key in keys if keys.count(key) > 1}:
        problems.add(where, f"{name_of(document)}: secretKey {key!r} fetched twice")
    template = ((spec.get("target") or {}).get("template") or {}).get("data")
    if not isinstance(template, dict):
        return
    samples = {key: f"{key}{SAMPLE_SUFFIX}" for key in keys if isinstance(key, str)}
    used: set[str] = set()
    for output, text in template.items():
        location = f"{where} {name_of(document)} template {output}"
        try:
            rendered_text, output_used = render_template(str(text), samples)
        except ValueError as error:
            problems.add(location, str(error))
            continue
        used |= output_used
        if output.endswith(".toml"):
            check_toml(location, rendered_text, samples, problems)
        elif output == "userlist.txt":
            check_userlist(location, rendered_text, samples, problems)
    for key in sorted(set(samples) - used):
        problems.add(where, f"{name_of(document)}: fetches {key!r} but the template never uses it")


def check_secret_store(where: str, document: dict, rendered: list[dict], problems: Problems) -> None:
    account = (((document.get("spec") or {}).get("provider") or {}).get("aws") or {}).get("auth", {}) \
        .get("jwt", {}).get("serviceAccountRef", {}).get("name")
    namespace = (document.get("metadata") or {}).get("namespace")
    if account and not any(
        other.get("kind") == "ServiceAccount" and other.get("metadata", {}).get("name") == account
        and other.get("metadata", {}).get("namespace") == namespace for other in rendered
    ):
        problems.add(where, f"{name_of(document)}: serviceAccountRef {account!r} is not a ServiceAccount we render")


def check_service_monitor(where: str, document: dict, rendered: list[dict], problems: Problems) -> None:
    spec = document.get("spec") or {}
    wanted = (spec.get("selector") or {}).get("matchLabels") or {}
    namespaces = (spec.get("namespaceSelector") or {}).get("matchNames") or [document["metadata"].get("namespace")]
    services = [
        other for other in rendered
        if other.get("kind") == "Service" and other.get("metadata", {}).get("namespace") in namespaces
        and wanted.items() <= (other.get("metadata", {}).get("labels") or {}).items()
    ]
    if not services:
        problems.add(where, f"{name_of(document)}: selects no Service we render (labels {wanted})")
        return
    ports = {port.get("name") for service in services for port in service.get("spec", {}).get("ports", [])}
    for endpoint in spec.get("endpoints") or []:
        if endpoint.get("port") not in ports:
            problems.add(where, f"{name_of(document)}: endpoint port {endpoint.get('port')!r} is not a port of "
                                f"{sorted(name_of(s) for s in services)}")


CROSS_CHECKS = {
    "ExternalSecret": check_external_secret,
    "SecretStore": check_secret_store,
    "ServiceMonitor": check_service_monitor,
}


def validate(found: list[tuple[str, dict]], kubernetes_version: str = "1.33.0") -> tuple[Problems, int]:
    problems = Problems()
    rendered = [document for _, document in found if isinstance(document, dict)]
    custom = 0
    for where, document in found:
        if not isinstance(document, dict) or "kind" not in document or "apiVersion" not in document:
            problems.add(where, "not a Kubernetes object")
            continue
        if check_schema(where, document, kubernetes_version, problems):
            custom += 1
            cross_check = CROSS_CHECKS.get(document["kind"])
            if cross_check and isinstance(document.get("metadata"), dict):
                cross_check(where, document, rendered, problems)
    return problems, custom


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="DIR_OR_FILE")
    parser.add_argument("--kubernetes-version", default="1.33.0")
    args = parser.parse_args(argv)
    found = documents(args.paths)
    if not found:
        print("validate_crs: no documents found", file=sys.stderr)
        return 1
    problems, custom = validate(found, args.kubernetes_version)
    for problem in problems:
        print(f"validate_crs: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"validate_crs: {len(found)} objects, {custom} custom resources valid", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
