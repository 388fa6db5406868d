"""Builds shared by the packaging tests (no network: ``--no-isolation``, local files only).

* ``tree_wheel``: ``python -m build --wheel`` straight from the checkout;
* ``sdist`` and ``sdist_wheel``: ``python -m build``, which makes the sdist and then the wheel
  *from the unpacked sdist*, the path pip takes when it installs from an sdist;
* ``clean_venv``: a fresh virtualenv holding the tree wheel alone (a core-only install, console
  script included), installed by pip from the file with ``--no-index``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.helpers import build, new_venv, pip_install


@pytest.fixture(scope="session")
def tree_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tree-dist")
    build("--wheel", outdir=out)
    (found,) = out.glob("netra_resilience-*.whl")
    return found


@pytest.fixture(scope="session")
def sdist_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("sdist-dist")
    build(outdir=out)  # sdist, then the wheel from the unpacked sdist
    (sdist,) = out.glob("netra_resilience-*.tar.gz")
    (wheel,) = out.glob("netra_resilience-*.whl")
    return sdist, wheel


@pytest.fixture(scope="session")
def sdist(sdist_build: tuple[Path, Path]) -> Path:
    return sdist_build[0]


@pytest.fixture(scope="session")
def sdist_wheel(sdist_build: tuple[Path, Path]) -> Path:
    return sdist_build[1]


@pytest.fixture(scope="session")
def clean_venv(tree_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv with only the wheel (no third-party package)."""
    python = new_venv(tmp_path_factory.mktemp("clean") / "venv")
    pip_install(python, str(tree_wheel))
    return python
