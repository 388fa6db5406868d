"""Instructions per call, counted by valgrind's callgrind: a figure that barely moves with the
machine's load, unlike wall time (this VM has no PMU for ``perf stat -e instructions``).

A benchmark re-runs itself under ``valgrind --tool=callgrind`` (:func:`count_in_child`),
counting only inside the builtin ``eval`` and dumping as it returns
(``--toggle-collect=builtin_eval --dump-after=builtin_eval``: synchronous, unlike a
``callgrind_control`` request, which the process serves whenever it next polls). The child
builds each variant, warms it up, then runs ``n`` calls inside one ``eval`` (the variant's
coroutine driven to its end there: it must not suspend), and again ``2 n`` calls
(:func:`count_variants`). Instructions per call are ``(I(2n) - I(n)) / n``, so the ``eval``
itself cancels out. Interpreter, not kernel: user-space instructions only.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._harness import Variant

RESULT_ENV = "NETRA_BENCH_CALLGRIND_RESULT"  # set in the child: where its counts go (JSON)
OUT_ENV = "NETRA_BENCH_CALLGRIND_OUT"  # the child's --callgrind-out-file


def available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def in_child() -> bool:
    return RESULT_ENV in os.environ


def count_in_child(module: str, args: list[str], timeout: float = 1_800.0) -> dict[str, float]:
    """Run ``python -m module *args`` under callgrind; the instructions per call it counted
    for each variant (by name). Empty when valgrind is missing."""
    if not available():
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        result = Path(tmp) / "counts.json"
        env = {**os.environ, RESULT_ENV: str(result), OUT_ENV: str(out)}
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--collect-atstart=no",
            "--toggle-collect=builtin_eval",
            "--dump-after=builtin_eval",
            sys.executable,
            "-m",
            module,
            *args,
        ]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0 or not result.exists():
            tail = (done.stdout + done.stderr)[-2_000:]
            raise RuntimeError(f"callgrind child failed (exit {done.returncode}):\n{tail}")
        counts: dict[str, float] = json.loads(result.read_text())
        return counts


def _last_dump(out: Path) -> int:
    """Instructions in the newest dump (the ``eval`` that just returned)."""
    parts = [p for p in out.parent.glob(f"{out.name}.*") if p.suffix[1:].isdigit()]
    newest = max(parts, key=lambda p: int(p.suffix[1:]))
    found = re.search(r"^totals:\s+(\d+)", newest.read_text(), re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no totals in {newest}")
    return int(found[1])


def _drive(coroutine: Any) -> None:
    """Run a coroutine that never suspends to its end (inside the caller's task)."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a counted variant suspended (it must complete without waiting)")


_COUNTED = compile("drive(run(n))", "<counted>", "eval")


async def count_variants(variants: list[Variant], calls: int, warmup: int = 200) -> None:
    """In the child: count each variant's instructions per call, write them for the parent."""
    out = Path(os.environ[OUT_ENV])
    counts: dict[str, float] = {}
    for variant in variants:
        try:
            run = await variant.build()
        except ImportError:
            continue
        await run(warmup)
        totals = []
        for n in (calls, 2 * calls):
            gc.collect()
            gc.disable()
            try:
                eval(_COUNTED, {"drive": _drive, "run": run, "n": n})
            finally:
                gc.enable()
            totals.append(_last_dump(out))
        counts[variant.name] = (totals[1] - totals[0]) / calls
    _write(counts)


def _write(counts: dict[str, float]) -> None:
    Path(os.environ[RESULT_ENV]).write_text(json.dumps(counts))
