"""Importing an adapter whose library is not installed says which install line fixes it."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = """
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Missing())
try:
    import {adapter}
except ImportError as error:
    print(error)
else:
    print("imported")
"""


@pytest.mark.parametrize(
    ("adapter", "blocked", "extra"),
    [
        ("netra_resilience.integrations.fastapi", "fastapi", "fastapi"),
        ("netra_resilience.integrations.openai", "openai", "openai"),
        ("netra_resilience.integrations.anthropic", "anthropic", "anthropic"),
        ("netra_resilience.integrations.http.httpx", "httpx", "httpx"),
        ("netra_resilience.integrations.http.httpx2", "httpx2", "httpx2"),
        ("netra_resilience.integrations.sqlalchemy", "sqlalchemy", "sqlalchemy"),
        ("netra_resilience.integrations.prometheus", "prometheus_client", "prometheus"),
        ("netra_resilience.integrations.aiocache", "aiocache", "aiocache"),
        ("netra_resilience.integrations.dbos", "dbos", "dbos"),
    ],
)
def test_a_missing_library_names_the_extra(adapter: str, blocked: str, extra: str) -> None:
    code = BLOCK.format(adapter=adapter, blocked=blocked)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    message = result.stdout.strip()
    assert f'pip install "netra-resilience[{extra}]"' in message, message
    assert blocked in message


def test_the_core_imports_no_adapter_library() -> None:
    libraries = (
        "fastapi",
        "starlette",
        "httpx",
        "httpx2",
        "openai",
        "anthropic",
        "redis",
        "sqlalchemy",
    )
    code = (
        "import sys, netra_resilience;"
        f"print(sorted(m for m in {libraries!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
