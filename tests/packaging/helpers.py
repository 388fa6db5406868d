"""Helpers for the packaging tests: builds and virtualenvs without network or pip inside."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build(*args: str, outdir: Path) -> None:
    """``python -m build`` of the checkout with the test venv's hatchling (no isolation)."""
    command = [sys.executable, "-m", "build", "--no-isolation", *args]
    subprocess.run(
        [*command, "--outdir", str(outdir), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=180,
    )


def pip_install(python: Path, *args: str) -> None:
    """pip of the test venv installing into ``python``'s environment (which has no pip)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index",
         "--no-deps", *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


def new_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=False, clear=True).create(path)
    return path / "bin" / "python"


def purelib(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return Path(out.strip())
