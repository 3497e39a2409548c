"""The package surfaces: explicit ``__all__``, the layer boundary, documented overrides."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import tektree
from tektree.config import ENV_OVERRIDES

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("module", ["tektree", "tektree.persistence", "tektree.testing",
                                    "tektree.reminders", "tektree.jobs",
                                    "gateway", "actors"])
def test_all_names_exist_and_are_unique(module: str) -> None:
    mod = importlib.import_module(module)
    names = list(mod.__all__)
    assert len(names) == len(set(names))
    missing = [n for n in names if not hasattr(mod, n)]
    assert missing == []


def test_kernel_classes_are_re_exported_from_the_package() -> None:
    for name in ["Actor", "ActorRef", "ActorSystem", "Node", "Supervisor", "ActorFailed",
                 "AskTimeout", "CodecError", "message", "handler", "ActorId", "Envelope"]:
        assert name in tektree.__all__
        assert getattr(tektree, name).__module__.startswith("tektree")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("tektree", {"actors", "gateway"}),
    ("actors", {"gateway"}),
])
def test_imports_point_down_only(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_modules(path) & forbidden)
        for path in (ROOT / package).rglob("*.py")
        if _imported_modules(path) & forbidden
    }
    assert offenders == {}


def test_readme_documents_every_environment_override() -> None:
    readme = (ROOT / "README.md").read_text()
    undocumented = [name for name in ENV_OVERRIDES if f"`{name}`" not in readme]
    assert undocumented == []
