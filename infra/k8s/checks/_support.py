"""Shared by the self-tests: the render script as a module, and the example values rendered once."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import tempfile
from functools import lru_cache
from pathlib import Path

import yaml

K8S = Path(__file__).resolve().parent.parent
EXAMPLE_VALUES = K8S / "values" / "example.yaml"


@lru_cache(maxsize=1)
def render_module():
    loader = importlib.machinery.SourceFileLoader("chatsdk_k8s_render", str(K8S / "render"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def example_values() -> dict:
    values = yaml.safe_load(EXAMPLE_VALUES.read_text(encoding="utf-8"))
    values["image_tag"] = "selftest"
    return values


def render_example(directory: Path, **overrides) -> dict[str, str]:
    """Renders the example values (plus overrides) into directory; returns {file name: text}."""
    outputs = render_module().render({**example_values(), **overrides})
    for name, text in outputs.items():
        (directory / name).write_text(text, encoding="utf-8")
    return outputs


def temporary_directory() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="chatsdk-k8s-selftest-")
