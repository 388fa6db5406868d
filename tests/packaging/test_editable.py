"""An editable install exposes ``netra_resilience`` only.

With hatchling's default editable mode the repository root went on ``sys.path``, so
``integrations``, ``tests``, ``bench`` and ``examples`` were importable from anywhere and one
file loaded as two modules (two ``UpstreamStatusError`` classes). ``dev-mode-exact`` installs
an import hook for the package alone; ``netra_resilience.integrations`` still resolves through
the link in the checkout. Checked twice: in a fresh virtualenv given a freshly built editable
wheel, and in the virtualenv ``scripts/test`` made (the one the suite runs in).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.helpers import ROOT, new_venv, pip_install, purelib

FOLDERS = ["integrations", "tests", "bench", "examples"]

PACKAGE_CHECK = (
    "import pathlib, netra_resilience, netra_resilience.integrations.fastapi as f;"
    "import netra_resilience.integrations.http.httpx as h;"
    "print(pathlib.Path(netra_resilience.__file__).resolve().parent.parent);"
    "print(f.ResilienceMiddleware.__module__);"
    "import sys; print(sum(1 for m in sys.modules.values()"
    " if getattr(m, '__file__', None) == h.__file__))"
)


@pytest.fixture(scope="module")
def editable_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the checkout installed editable (hatchling, no network)."""
    out = tmp_path_factory.mktemp("editable-dist")
    subprocess.run(
        [sys.executable, "-c", f"from hatchling.build import build_editable as b; b({str(out)!r})"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    (wheel,) = out.glob("netra_resilience-*.whl")
    python = new_venv(tmp_path_factory.mktemp("editable") / "venv")
    pip_install(python, str(wheel))
    # Third-party packages (fastapi, and editables for the import hook) come from the test
    # venv, as a path entry only: its own .pth files (its editable hook) are not run. The name
    # sorts before the hook's .pth, which imports editables at start-up.
    (purelib(python) / "00-test-venv-packages.pth").write_text(f"{purelib(Path(sys.executable))}\n")
    return python


def run(python: Path | str, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, cwd=cwd, check=False
    )


@pytest.mark.parametrize("name", FOLDERS)
def test_repository_folders_are_not_importable_from_a_fresh_editable_install(
    name: str, editable_venv: Path, tmp_path: Path
) -> None:
    result = run(editable_venv, f"import {name}", tmp_path)
    assert result.returncode != 0
    assert f"No module named '{name}'" in result.stderr


def test_a_fresh_editable_install_imports_the_checkout_and_its_integrations(
    editable_venv: Path, tmp_path: Path
) -> None:
    result = run(editable_venv, PACKAGE_CHECK, tmp_path)
    assert result.returncode == 0, result.stderr
    root, module, copies = result.stdout.split()
    assert Path(root) == ROOT  # editable: the checkout's files, not a copy
    assert module == "netra_resilience.integrations.fastapi._middleware"
    assert copies == "1"  # one file, one module object
    assert not list(purelib(editable_venv).glob("netra_resilience/**/*.py"))


@pytest.mark.parametrize("name", FOLDERS)
def test_repository_folders_are_not_importable_from_the_test_venv(
    name: str, tmp_path: Path
) -> None:
    result = run(sys.executable, f"import {name}", tmp_path)
    assert result.returncode != 0
    assert f"No module named '{name}'" in result.stderr


def test_the_test_venv_imports_the_package_from_the_checkout(tmp_path: Path) -> None:
    result = run(sys.executable, PACKAGE_CHECK, tmp_path)
    assert result.returncode == 0, result.stderr
    root, module, copies = result.stdout.split()
    assert Path(root) == ROOT
    assert module == "netra_resilience.integrations.fastapi._middleware"
    assert copies == "1"
