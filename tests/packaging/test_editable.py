"""The editable install (what ``scripts/test`` makes) exposes ``netra_resilience`` only.

With hatchling's default editable mode the repository root went on ``sys.path``, so
``integrations``, ``tests``, ``bench`` and ``examples`` were importable from anywhere and one
file loaded as two modules (two ``UpstreamStatusError`` classes). ``dev-mode-exact`` installs
an import hook for the package alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=cwd, check=False
    )


@pytest.mark.parametrize("name", ["integrations", "tests", "bench", "examples"])
def test_repository_folders_are_not_importable_from_outside(name: str, tmp_path: Path) -> None:
    result = run(f"import {name}", tmp_path)
    assert result.returncode != 0
    assert f"No module named '{name}'" in result.stderr


def test_the_package_and_its_integrations_import_from_the_checkout(tmp_path: Path) -> None:
    result = run(
        "import netra_resilience, netra_resilience.integrations.fastapi as f, pathlib;"
        "print(pathlib.Path(netra_resilience.__file__).resolve().parent.parent);"
        "print(f.ResilienceMiddleware.__module__)",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    root, module = result.stdout.split()
    assert Path(root) == ROOT  # editable: the checkout's files, not a copy
    assert module == "netra_resilience.integrations.fastapi._middleware"
