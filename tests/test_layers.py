"""The packages import only downward: protocol ← media ← kiosk, controller.

The teacher's program (``controller``) never imports the panel's (``kiosk``): what both
need lives in ``protocol`` (sans-I/O), ``media`` or ``i18n``. The one exception is
``controller/demo.py``, which runs a panel in-process for the demo.
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
