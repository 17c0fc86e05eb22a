"""The packages import only downward: protocol ← media ← kiosk, controller.

The teacher's program (``controller``) never imports the panel's (``kiosk``): what both
need lives in ``protocol`` (sans-I/O), ``media`` or ``i18n``. The one exception is
``controller/demo.py``, which runs a panel in-process for the demo.

Inside a package, the top floor (the panel's window) is imported only by the wiring,
and no module imports another's private (``_underscored``) name: what two modules share
is public in the lower one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "protocol": {"media", "kiosk", "controller"},
    "i18n": {"media", "kiosk", "controller"},
    "media": {"kiosk", "controller"},
    "kiosk": {"controller"},
    "controller": {"kiosk"},
}
EXCEPTIONS = {"controller/demo.py"}

PACKAGES = sorted(FORBIDDEN)

TOP_FLOOR = {"kiosk.window": {"kiosk/app.py"}}
"""Modules on a package's top floor, and the only modules that may import each."""


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_only_downward(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name in EXCEPTIONS:
            continue
        for imported in sorted(imported_packages(path) & FORBIDDEN[package]):
            wrong.append(f"{name} imports {imported}")
    assert wrong == []


def product_files() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8")))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def from_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    """``from package.module import ...`` of our own packages (type-only ones too)."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module is not None
        and node.level == 0
        and node.module.split(".")[0] in FORBIDDEN
    ]


def test_no_module_imports_a_private_name_of_another() -> None:
    wrong = [
        f"{name} imports {node.module}.{alias.name}"
        for name, tree in product_files()
        for node in from_imports(tree)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert wrong == []


def test_the_top_floor_is_imported_only_by_the_wiring() -> None:
    wrong = []
    for name, tree in product_files():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                modules = {alias.name for alias in node.names}
            else:
                continue
            for top, allowed in TOP_FLOOR.items():
                if top in modules and name not in allowed and name != top.replace(".", "/") + ".py":
                    wrong.append(f"{name} imports {top}")
    assert wrong == []
