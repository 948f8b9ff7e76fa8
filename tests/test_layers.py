"""The import contracts in pyproject.toml hold for the tree, and they catch what they forbid.

Each breaking case edits a copy of the packages in a temporary directory and runs
``lint-imports`` there (the current directory comes first on its path), so the real
tree is never touched. Imports are read, not executed: an import appended to the end
of a module is enough.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-c",
        "from importlinter.cli import lint_imports_command; lint_imports_command()",
        "--no-cache",
        "--no-logo",
    ]
    for contract in contracts:
        command += ["--contract", contract]
    # Wide enough that no message is wrapped.
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages and their contracts."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("provisioning", "console"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(tree: Path, module: str, statement: str) -> None:
    path = tree.joinpath(*module.split(".")).with_suffix(".py")
    path.write_text(path.read_text() + f"\n{statement}\n")


def test_the_tree_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_cycle_added_on_purpose_breaks_the_no_cycles_contract(tree):
    # console.diff imports console.attributes; the reverse closes a cycle that no
    # layer rule sees (both are console modules).
    add_import(tree, "console.attributes", "from console import diff")
    result = lint_imports(tree, "no-cycles")
    assert result.returncode != 0
    assert "No cycles are allowed in console" in result.stdout
    assert lint_imports(tree, "layers").returncode == 0


def test_a_cycle_inside_a_subpackage_is_found_too(tree):
    # provisioning.scim.patch imports provisioning.scim.filters.
    add_import(tree, "provisioning.scim.filters", "from provisioning.scim import patch")
    result = lint_imports(tree, "no-cycles")
    assert result.returncode != 0
    assert "No cycles are allowed in provisioning.scim" in result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "message"),
    [
        # The protocol translates nothing to SQL: that lives in provisioning.directory.query.
        (
            "provisioning.scim.filters",
            "from provisioning.directory.models import User",
            "provisioning.scim.filters is not allowed to import provisioning.directory",
        ),
        # The directory offers plug points; oversight plugs its gates in.
        (
            "provisioning.directory.services",
            "from provisioning.oversight import policy",
            "provisioning.directory is not allowed to import provisioning.oversight",
        ),
        # Access control sits below the directory.
        (
            "provisioning.access.authorization",
            "from provisioning.directory import services",
            "provisioning.access is not allowed to import provisioning.directory",
        ),
    ],
)
def test_an_upward_import_breaks_the_layers_contract(tree, module, statement, message):
    add_import(tree, module, statement)
    result = lint_imports(tree, "layers")
    assert result.returncode != 0
    assert message in result.stdout, result.stdout


def test_the_console_may_not_use_the_scim_http_views(tree):
    add_import(tree, "console.views", "from provisioning.scim import views")
    result = lint_imports(tree, "entry-points-beside-scim-http")
    assert result.returncode != 0
    assert "console.views -> provisioning.scim.views" in result.stdout, result.stdout
