"""The built wheel installs into a clean virtualenv with the integrations inside the package.

In the repository the adapters live in the top-level ``integrations/`` folder and
``netra_resilience/integrations`` links to it; this proves the wheel carries real files at
``netra_resilience/integrations`` and that the installed package (not the source tree) imports.
"""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (found,) = out.glob("netra_resilience-*.whl")
    return found


def test_wheel_contains_integrations_as_real_files(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    base = ROOT / "integrations"
    sources = sorted(str(p.relative_to(base)) for p in base.rglob("*.py"))
    prefix = "netra_resilience/integrations/"
    packaged = sorted(n[len(prefix) :] for n in names if n.startswith(prefix) and n.endswith(".py"))
    assert packaged == sources
    assert "netra_resilience/py.typed" in names


def test_wheel_imports_from_a_clean_virtualenv(wheel: Path, tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Install by unpacking (a wheel is a zip): no pip and no network needed in the clean venv.
    zipfile.ZipFile(wheel).extractall(site)
    check = (
        "import netra_resilience, netra_resilience.integrations as i, pathlib;"
        "import importlib.util as u;"
        "assert pathlib.Path(i.__file__).resolve().is_relative_to(pathlib.Path("
        + repr(site)
        + ").resolve());"
        "base=pathlib.Path(i.__file__).parent;"
        # find_spec of a.b.c imports a.b (and its third-party library): top-level names only
        "mods=[p.stem if p.is_file() else p.name for p in base.iterdir()"
        " if p.suffix == '.py' and p.stem != '__init__' or (p / '__init__.py').is_file()];"
        "assert all(u.find_spec('netra_resilience.integrations.'+m) for m in mods), mods;"
        "print(len(mods))"
    )
    result = subprocess.run(
        [str(python), "-I", "-c", check], check=True, capture_output=True, text=True, cwd=tmp_path
    )
    assert int(result.stdout.strip()) == len(
        [p for p in (ROOT / "integrations").iterdir() if p.suffix == ".py" or p.is_dir()]
    ) - 1 - int((ROOT / "integrations" / "__pycache__").exists())
