"""The built wheel (from the checkout and from the sdist) carries the integrations as real
files and installs into a clean virtualenv; a core-only install's console script explains
itself instead of crashing.

In the repository the adapters live in the top-level ``integrations/`` folder and
``netra_resilience/integrations`` links to it; hatchling follows the link in a wheel but
neither follows nor keeps it in an sdist, which is why the sdist→wheel path is tested apart.
"""

from __future__ import annotations

import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.packaging.helpers import ROOT, purelib

PREFIX = "netra_resilience/integrations/"


def integration_files() -> list[str]:
    """Every file of the integrations folder (not only ``.py``), as wheel paths."""
    base = ROOT / "integrations"
    return sorted(
        PREFIX + str(p.relative_to(base))
        for p in base.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.mark.parametrize("source", ["tree_wheel", "sdist_wheel"])
def test_wheel_contains_integrations_as_real_files(
    source: str, request: pytest.FixtureRequest
) -> None:
    wheel: Path = request.getfixturevalue(source)
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    assert sorted(n for n in names if n.startswith(PREFIX)) == integration_files()
    assert len(names) == len(set(names))  # no file twice
    link_bits = 0o120000  # a symlink stored in a zip has these mode bits
    assert not [i.filename for i in infos if (i.external_attr >> 16) & 0o170000 == link_bits]
    assert "netra_resilience/py.typed" in names
    for asset in ("prometheus_alerts.yml", "prometheus_alerts_test.yml", "grafana_dashboard.json"):
        assert f"{PREFIX}{asset}" in names  # asset_path() finds them in an installed wheel
    assert not [n for n in names if n.startswith(("integrations/", "tests/", "examples/"))]


def test_sdist_carries_the_integrations_once_at_their_import_path(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        members = archive.getmembers()
    top = members[0].name.split("/")[0]
    files = sorted(
        m.name.removeprefix(f"{top}/") for m in members if m.name.startswith(f"{top}/{PREFIX}")
    )
    assert files == integration_files()
    assert all(m.isfile() or m.isdir() for m in members)  # no links to break elsewhere
    assert not [m.name for m in members if m.name.startswith(f"{top}/integrations/")]


def test_wheel_imports_from_a_clean_virtualenv(clean_venv: Path, tmp_path: Path) -> None:
    site = purelib(clean_venv)
    check = (
        "import netra_resilience, netra_resilience.integrations as i, pathlib;"
        "import importlib.util as u;"
        "assert pathlib.Path(i.__file__).resolve().is_relative_to(pathlib.Path("
        + repr(str(site))
        + ").resolve());"
        "base=pathlib.Path(i.__file__).parent;"
        # find_spec of a.b.c imports a.b (and its third-party library): top-level names only
        "mods=[p.stem if p.is_file() else p.name for p in base.iterdir()"
        " if p.suffix == '.py' and p.stem != '__init__' or (p / '__init__.py').is_file()];"
        "assert all(u.find_spec('netra_resilience.integrations.'+m) for m in mods), mods;"
        "print(len(mods))"
    )
    result = subprocess.run(
        [str(clean_venv), "-I", "-c", check],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    expected = [
        p
        for p in (ROOT / "integrations").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    ]
    assert int(result.stdout.strip()) == len(expected)


def test_core_only_console_script_says_which_extra_to_install(
    clean_venv: Path, tmp_path: Path
) -> None:
    script = clean_venv.parent / "netra-resilience"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(script), *args],
            check=False,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )

    usage = run("--help")
    assert usage.returncode == 0, usage.stderr
    assert "drill" in usage.stdout
    assert run("drill", "--help").returncode == 0
    hint = (
        "netra-resilience drill needs the 'httpx' package: "
        'pip install "netra-resilience[drill]"'
    )
    for args in (("drill",), ("drill", "--target", "http://127.0.0.1:9")):
        result = run(*args)
        assert result.returncode == 2
        assert result.stderr.strip() == hint
        assert result.stdout == ""
