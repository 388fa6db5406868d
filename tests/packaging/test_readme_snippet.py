"""The README's app example, copied out of the README into a folder outside the repository,
runs against the built wheel in a fresh virtualenv holding only the extras the README names.

The virtualenv's third-party packages are installed once (from the package index, keyed by
the README's install line) and reused; the wheel is reinstalled on every run.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
import venv
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

DRIVER = r'''
import asyncio, json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import readme_app  # the README snippet, as copied


async def call(app, method, path, body=b""):
    """A minimal ASGI client: the README's extras bring no HTTP test client."""
    sent = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("test", 80), "client": ("t", 1),
             "headers": [(b"host", b"test"), (b"content-type", b"application/json")]}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict((k.decode(), v.decode()) for k, v in start["headers"]), data


async def main():
    app = readme_app.app
    async with app.router.lifespan_context(app):
        body = json.dumps({"user_id": "u1", "message": "hi"}).encode()
        status, headers, data = await call(app, "POST", "/chat", body)
        health = await call(app, "GET", "/health")
    print(json.dumps({"status": status, "headers": headers, "body": json.loads(data),
                      "health": health[0]}))

asyncio.run(main())
'''


def readme_block(heading: str) -> str:
    section = README.split(f"## {heading}", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## {heading}'"
    return match.group(1)


def readme_extras() -> str:
    match = re.search(r'pip install "netra-resilience\[([a-z,]+)\]"', README)
    assert match, "README names no install line with extras"
    return match.group(1)


class FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        prompt = json.loads(self.rfile.read(length))["messages"][-1]["content"]
        body = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"answer to {prompt}"}}],
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def fake_openai() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def readme_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extras = readme_extras()
    key = hashlib.sha256(((ROOT / "pyproject.toml").read_text() + extras).encode()).hexdigest()
    env = ROOT / ".venv-readme"
    python = env / "bin" / "python"
    stamp = env / ".stamp"
    wheel_dir = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(wheel_dir),
         str(ROOT)],
        check=True, capture_output=True, timeout=120,
    )
    (wheel,) = wheel_dir.glob("netra_resilience-*.whl")
    if not stamp.exists() or stamp.read_text() != key:
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"{wheel}[{extras}]"],
            check=True, capture_output=True, timeout=300,
        )
        stamp.write_text(key)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True, capture_output=True, timeout=120,
    )
    return python


def test_readme_example_is_the_tested_example() -> None:
    snippet = readme_block("Use it in your app")
    tested = (ROOT / "examples" / "readme_app.py").read_text()
    body = tested.split("def create_app", 1)[1].split("\n\n\nasync def _no_analytics", 1)[0]
    assert "def create_app" + body in snippet


def test_readme_example_runs_from_the_wheel_in_a_fresh_venv(
    readme_venv: Path, fake_openai: str, tmp_path: Path
) -> None:
    (tmp_path / "readme_app.py").write_text(readme_block("Use it in your app"))
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {"OPENAI_API_KEY": "sk-readme-test", "OPENAI_BASE_URL": fake_openai, "PATH": "/usr/bin"}
    result = subprocess.run(
        [str(readme_venv), "-I", str(tmp_path / "driver.py")],
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["status"] == 200
    assert out["body"] == {"answer": "answer to hi", "status": "ok", "degraded": {}}
    assert out["health"] == 200
    # the installed package, not the source tree, served it
    where = subprocess.run(
        [str(readme_venv), "-I", "-c", "import netra_resilience; print(netra_resilience.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    assert "site-packages" in where and str(ROOT / "netra_resilience") not in where
