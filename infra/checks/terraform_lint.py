#!/usr/bin/env python3
"""Offline checks of infra/terraform that need no provider download and no cloud account.

`terraform validate` needs the providers, which CI cannot download; these checks catch what it would catch
between our own files, plus our rules:

- every .tf file parses (python-hcl2);
- every variable has a type and a description; a variable that holds a secret has no default and is sensitive;
- the roots under environments/ are environments/<env> (stage 1) and environments/<env>/stage2 (stage 2, its own
  state), and a stage-2 root belongs to an environment with a stage-1 root;
- every module under modules/ is used, and by every environment: called, directly or by a module it uses, by the
  environment's stage-1 or stage-2 root (modules/chatsdk, the stage-1 composition, and modules/chatsdk-data, the
  stage-2 one, call most of them);
- a module call, in an environment or in a module, passes every required variable of the module and nothing the
  module does not declare;
- every `var.x` names a variable of its own directory, every `module.m` a module called there and every
  `module.m.o` an output of the called module;
- a `moved` block's `to` names module calls that exist (`module.a.module.b`: a called here, b called by a) and its
  `from` no module that is still called here;
- every checkov skip says why.

Usage: terraform_lint.py [ROOT]   (default: infra/terraform next to this script's parent)
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import hcl2

# The stage-2 root of environment <env> is environments/<env>/stage2.
STAGE2_ROOT = "stage2"
# Arguments of a module block that are Terraform's, not the module's variables.
MODULE_META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}
# A variable named like this holds a secret, unless the name says it is only a reference to one.
SECRET_NAME = re.compile(r"(password|secret|token|private_key|credential)")
REFERENCE_SUFFIX = re.compile(r"_(arn|arns|name|names|id|ids|prefix|enabled|days|kms_key_arn)$")
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::(.*))?")
VAR_REFERENCE = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")
MODULE_REFERENCE = re.compile(r"\bmodule\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_-]*)")
MODULE_NAME = re.compile(r"\bmodule\.([A-Za-z_][A-Za-z0-9_-]*)")
# An address in a moved block, e.g. ${module.chatsdk.module.network} or module.a[0].aws_s3_bucket.b
ADDRESS_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)(\[[^\]]*\])?$")


def unquote(text: object) -> str:
    """python-hcl2 keeps the quotes of labels and string literals."""
    text = str(text)
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


@dataclass
class Directory:
    """The .tf files of one directory: a Terraform module (or a root composition)."""

    path: Path
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: set[str] = field(default_factory=set)
    modules: dict[str, dict] = field(default_factory=dict)  # name -> block
    moved: list[tuple[Path, str, str]] = field(default_factory=list)  # (file, from, to)
    # (file, text) of every string value, for reference checks
    strings: list[tuple[Path, str]] = field(default_factory=list)


def walk_strings(value: object, found: list[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key != "__comments__":
                walk_strings(inner, found)
    elif isinstance(value, list):
        for inner in value:
            walk_strings(inner, found)
    elif isinstance(value, str):
        found.append(value)


def walk_comments(value: object, found: list[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "__comments__":
                found.extend(comment.get("value", "") for comment in inner if isinstance(comment, dict))
            else:
                walk_comments(inner, found)
    elif isinstance(value, list):
        for inner in value:
            walk_comments(inner, found)


def tf_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.tf") if ".terraform" not in path.parts)


def lint(root: Path) -> list[str]:
    errors: list[str] = []
    directories: dict[Path, Directory] = {}
    files = tf_files(root)
    if not files:
        return [f"{root}: no .tf files"]
    for path in files:
        try:
            with path.open(encoding="utf-8") as handle:
                parsed = hcl2.load(handle)
        except Exception as error:  # python-hcl2 raises lark errors of several kinds
            errors.append(f"{path}: does not parse: {error}")
            continue
        directory = directories.setdefault(path.parent, Directory(path.parent))
        for block in parsed.get("variable", []):
            for name, body in block.items():
                directory.variables[unquote(name)] = body
                check_variable(path, unquote(name), body, errors)
        for block in parsed.get("output", []):
            directory.outputs.update(unquote(name) for name in block)
        for block in parsed.get("module", []):
            for name, body in block.items():
                directory.modules[unquote(name)] = body
        # Addresses, not expressions: checked by check_moved, kept out of the reference checks.
        for block in parsed.pop("moved", []):
            directory.moved.append((path, address(block.get("from", "")), address(block.get("to", ""))))
        found: list[str] = []
        walk_strings(parsed, found)
        directory.strings.extend((path, text) for text in found)
        comments: list[str] = []
        walk_comments(parsed, comments)
        for comment in comments:
            match = SKIP_COMMENT.search(comment)
            if match and len((match.group(2) or "").strip()) < 10:
                errors.append(f"{path}: checkov skip {match.group(1)} without a reason (`#checkov:skip=ID:why`)")

    check_references(directories, errors)
    check_moved(directories, errors)
    check_module_calls(root, directories, errors)
    return errors


def address(value: object) -> str:
    text = unquote(value)
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return text.strip()


def module_path(text: str) -> list[str] | None:
    """The module call names of an address (module.a.module.b.aws_x.y -> [a, b]); None if it does not parse."""
    steps = text.split(".")
    names: list[str] = []
    index = 0
    while index < len(steps) and steps[index] == "module":
        if index + 1 >= len(steps):
            return None
        match = ADDRESS_STEP.match(steps[index + 1])
        if match is None:
            return None
        names.append(match.group(1))
        index += 2
    return names


def check_variable(path: Path, name: str, body: dict, errors: list[str]) -> None:
    if "type" not in body:
        errors.append(f"{path}: variable {name} has no type")
    if not unquote(body.get("description", "")).strip():
        errors.append(f"{path}: variable {name} has no description")
    secret = SECRET_NAME.search(name) and not REFERENCE_SUFFIX.search(name)
    sensitive = body.get("sensitive") is True or str(body.get("sensitive")).lower() == "true"
    if (secret or sensitive) and "default" in body and body["default"] not in (None, "null"):
        errors.append(f"{path}: variable {name} holds a secret and must not have a default")
    if secret and not sensitive:
        errors.append(f"{path}: variable {name} holds a secret and must be `sensitive = true`")


def label(path: Path) -> str:
    """A directory's name in messages: modules/x -> x, environments/prod/stage2 -> prod/stage2."""
    return f"{path.parent.name}/{path.name}" if path.name == STAGE2_ROOT else path.name


def check_references(directories: dict[Path, Directory], errors: list[str]) -> None:
    for directory in directories.values():
        for path, text in directory.strings:
            for name in VAR_REFERENCE.findall(text):
                if name not in directory.variables:
                    errors.append(f"{path}: var.{name} is not a variable of {label(directory.path)}")
            for module in MODULE_NAME.findall(text):
                if module not in directory.modules:
                    errors.append(f"{path}: module.{module} is not called in {label(directory.path)}")
            for module, output in MODULE_REFERENCE.findall(text):
                call = directory.modules.get(module)
                if call is None:
                    continue  # reported above
                target = module_directory(directory.path, call)
                callee = directories.get(target) if target else None
                if callee is not None and output not in callee.outputs:
                    errors.append(f"{path}: module.{module}.{output}: {label(target)} has no output {output}")


def check_moved(directories: dict[Path, Directory], errors: list[str]) -> None:
    for directory in directories.values():
        for path, source, target in directory.moved:
            sources, targets = module_path(source), module_path(target)
            if sources is None or targets is None or not source or not target:
                errors.append(f"{path}: moved block: cannot read the addresses from = {source!r}, to = {target!r}")
                continue
            if sources and sources[0] in directory.modules and sources[0] not in targets[:1]:
                errors.append(f"{path}: moved from {source}, but module {sources[0]} is still called in "
                              f"{directory.path.name}")
            caller = directory
            for name in targets:
                call = caller.modules.get(name)
                if call is None:
                    errors.append(f"{path}: moved to {target}: no module {name} is called in {caller.path.name}")
                    break
                callee_path = module_directory(caller.path, call)
                callee = directories.get(callee_path) if callee_path else None
                if callee is None:
                    break  # a registry module or a missing source (reported by check_module_calls)
                caller = callee


def module_directory(caller: Path, call: dict) -> Path | None:
    source = unquote(call.get("source", ""))
    if not source.startswith("."):
        return None  # a registry module: not ours to check
    return Path(os.path.normpath(caller / source))


def environment_roots(root: Path, directories: dict[Path, Directory], errors: list[str]) -> dict[str, list[Path]]:
    """Environment name -> its root directories: environments/<env> (stage 1) and environments/<env>/stage2."""
    environments_root = root / "environments"
    roots: dict[str, list[Path]] = {}
    for path in sorted(directories):
        if path.parent == environments_root:
            roots.setdefault(path.name, []).append(path)
        elif path.name == STAGE2_ROOT and path.parent.parent == environments_root:
            if path.parent not in directories:
                errors.append(f"{path}: stage-2 root without a stage-1 root in {path.parent}")
            roots.setdefault(path.parent.name, []).append(path)
        elif environments_root in path.parents:
            errors.append(f"{path}: .tf files under environments/ that are no root (environments/<env> for stage 1, "
                          f"environments/<env>/{STAGE2_ROOT} for stage 2)")
    if not roots:
        errors.append(f"{environments_root}: no environment compositions")
    return roots


def check_module_calls(root: Path, directories: dict[Path, Directory], errors: list[str]) -> None:
    modules_root = root / "modules"
    environments = environment_roots(root, directories, errors)
    used_by: dict[Path, set[Path]] = {}
    calls: dict[Path, set[Path]] = {}  # caller -> the module directories it calls
    for directory in directories.values():
        for name, call in directory.modules.items():
            target = module_directory(directory.path, call)
            if target is None:
                continue
            callee = directories.get(target)
            if callee is None:
                errors.append(f"{directory.path}: module {name}: source {target} has no .tf files")
                continue
            used_by.setdefault(target, set()).add(directory.path)
            calls.setdefault(directory.path, set()).add(target)
            given = {key for key in call if not key.startswith("__")} - MODULE_META_ARGUMENTS
            for argument in sorted(given - set(callee.variables)):
                errors.append(f"{directory.path}: module {name}: {target.name} has no variable {argument}")
            required = {key for key, body in callee.variables.items() if "default" not in body}
            for argument in sorted(required - given):
                errors.append(f"{directory.path}: module {name}: required variable {argument} not given")
    # An environment uses what its stage-1 and its stage-2 root use together.
    reachable = {name: set().union(*(reachable_from(path, calls) for path in paths))
                 for name, paths in environments.items()}
    for module in sorted(path for path in directories if path.parent == modules_root):
        if not used_by.get(module):
            errors.append(f"{module}: module is not used by any composition")
        for name in sorted(environments):
            if module not in reachable[name]:
                errors.append(f"{module}: module is not used by environment {name} "
                              f"(in its stage-1 or stage-2 root, directly or through a module it uses)")


def reachable_from(start: Path, calls: dict[Path, set[Path]]) -> set[Path]:
    """Every module directory that `start` calls, directly or through the modules it calls."""
    seen: set[Path] = set()
    pending = list(calls.get(start, ()))
    while pending:
        module = pending.pop()
        if module not in seen:
            seen.add(module)
            pending.extend(calls.get(module, ()))
    return seen


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "terraform"
    errors = lint(root)
    for error in errors:
        print(f"terraform-lint: {error}", file=sys.stderr)
    count = len(tf_files(root))
    if errors:
        print(f"terraform-lint: {len(errors)} problem(s) in {count} files", file=sys.stderr)
        return 1
    print(f"terraform-lint: {count} files parse; variables typed and described; "
          f"every module used by every environment (stage 1 + stage 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
