#!/usr/bin/env python3
"""Measure the shape of the code base from its source (AST only, nothing is imported).

    python scripts/shape.py            # print the figures
    python scripts/shape.py --check    # also fail (exit 1) when a layering rule is broken

Figures: root ``__all__`` size, module count, runtime import cycles, function-local imports
of project modules, private reaches (an integration or example importing a private core
module or name), and the netra modules that ``examples/agent_backend`` imports.

Rules enforced by ``--check`` (the test command runs it): no runtime import cycle, no
integration or example reaching a private core module, the core never importing
``integrations``, at most ``LOCAL_IMPORT_LIMIT`` function-local project imports.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = "netra_resilience"
INTEGRATIONS = "integrations"
LOCAL_IMPORT_LIMIT = 3
# The 0.2 shape (issue 11): a small root namespace, modules by concept, and an example
# backend that a newcomer reads with few imports.
ROOT_NAMES_LIMIT = 35
# 0.2 landed at 86; each capability after it (admission, runs, adapters) brings its own
# concept modules
MODULES_LIMIT = 104
EXAMPLE_MODULES_LIMIT = 8


@dataclass
class Module:
    name: str  # dotted, integrations as netra_resilience.integrations.*
    path: Path
    is_package: bool
    tree: ast.Module
    runtime_imports: set[str] = field(default_factory=set)
    local_imports: list[tuple[int, str]] = field(default_factory=list)
    imported: list[tuple[int, str, str]] = field(default_factory=list)  # (line, module, name)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == INTEGRATIONS:
        parts = [CORE, INTEGRATIONS, *parts[1:]]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_files() -> Iterator[Path]:
    for top in (CORE, INTEGRATIONS):
        for path in sorted((ROOT / top).rglob("*.py")):
            # netra_resilience/integrations is a link to integrations/: count it once
            if top == CORE and (ROOT / CORE / INTEGRATIONS) in path.parents:
                continue
            yield path


def resolve(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.name.split(".")
        if not module.is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, node.module] if node.module else parts)
    if base == INTEGRATIONS or base.startswith(INTEGRATIONS + "."):
        base = f"{CORE}.{base}"
    return base


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def scan(module: Module, known: set[str]) -> None:
    def targets(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
        if isinstance(node, ast.Import):
            return [(alias.name, "") for alias in node.names]
        base = resolve(module, node)
        out = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            out.append((sub, "") if sub in known else (base, alias.name))
        return out

    def walk(body: list[ast.stmt], in_function: bool) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target, name in targets(node):
                    if not target.startswith(CORE):
                        continue
                    module.imported.append((node.lineno, target, name))
                    if in_function:
                        module.local_imports.append((node.lineno, target))
                    # a function-local import still runs: it closes a cycle all the same
                    if target in known and target != module.name:
                        module.runtime_imports.add(target)
            elif isinstance(node, ast.If) and is_type_checking(node):
                walk(node.orelse, in_function)  # the body never runs
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                walk(getattr(node, "body", []), True)
            else:
                for child_body in ("body", "orelse", "finalbody", "handlers"):
                    inner = getattr(node, child_body, None)
                    if isinstance(inner, list):
                        walk([n for n in inner if isinstance(n, ast.stmt | ast.excepthandler)],
                             in_function)
                if isinstance(node, ast.ExceptHandler):
                    walk(node.body, in_function)

    walk(module.tree.body, False)


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(modules[v].runtime_imports):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for name in sorted(modules):
        if name not in index:
            strongconnect(name)
    return found


def is_private(dotted: str, name: str = "") -> bool:
    parts = dotted.split(".")
    return any(p.startswith("_") and not p.startswith("__") for p in parts) or (
        name.startswith("_") and not name.startswith("__")
    )


def private_reaches(modules: dict[str, Module]) -> list[str]:
    """An integration importing a private core module or name."""
    out = []
    prefix = f"{CORE}.{INTEGRATIONS}"
    for module in modules.values():
        if not module.name.startswith(prefix):
            continue
        for line, target, name in module.imported:
            if target.startswith(prefix):
                continue  # within the integrations: their own privates
            if is_private(target, name):
                out.append(f"{module.path.relative_to(ROOT)}:{line} {target} {name}".rstrip())
    return out


def core_to_integrations(modules: dict[str, Module]) -> list[str]:
    prefix = f"{CORE}.{INTEGRATIONS}"
    return [
        f"{m.path.relative_to(ROOT)}:{line} {target}"
        for m in modules.values()
        if not m.name.startswith(prefix)
        for line, target, _ in m.imported
        if target.startswith(prefix)
    ]


def example_imports(known: set[str]) -> tuple[set[str], list[str]]:
    used: set[str] = set()
    private: list[str] = []
    for path in sorted((ROOT / "examples").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[tuple[str, str]] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                names = [(a.name, "") for a in node.names]
            for imported, name in names:
                target = f"{CORE}.{imported}" if imported.startswith(INTEGRATIONS) else imported
                if not target.startswith(CORE):
                    continue
                if f"{target}.{name}" in known:
                    target = f"{target}.{name}"
                if "agent_backend" in path.parts:
                    used.add(target)
                if is_private(target, name):
                    private.append(f"{path.relative_to(ROOT)}:{node.lineno} {target} {name}")
    return used, private


def root_names() -> int:
    tree = ast.parse((ROOT / CORE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            return len(value)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a layering rule breaks")
    args = parser.parse_args()

    modules: dict[str, Module] = {}
    for path in project_files():
        name = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        modules[name] = Module(name, path, path.name == "__init__.py", tree)
    known = set(modules)
    for module in modules.values():
        scan(module, known)

    found_cycles = cycles(modules)
    local = [
        f"{m.path.relative_to(ROOT)}:{line} {target}"
        for m in modules.values()
        for line, target in m.local_imports
    ]
    reaches = private_reaches(modules)
    upward = core_to_integrations(modules)
    used, example_private = example_imports(known)
    core_count = sum(1 for n in modules if not n.startswith(f"{CORE}.{INTEGRATIONS}"))

    print(f"{'root __all__ names:':<37}{root_names()}")
    print(f"{'modules:':<37}{len(modules)} "
          f"(core {core_count}, integrations {len(modules) - core_count})")
    sections = [
        ("import cycles (local imports too)", [" <-> ".join(c) for c in found_cycles]),
        ("function-local project imports", local),
        ("private reaches (integrations)", reaches),
        ("private reaches (examples)", example_private),
        ("core importing integrations", upward),
        ("netra modules used by agent_backend", sorted(used)),
    ]
    for label, items in sections:
        print(f"{label + ':':<37}{len(items)}")
        for item in items:
            print(f"    {item}")

    if not args.check:
        return 0
    broken = []
    if found_cycles:
        broken.append("runtime import cycles")
    if reaches or example_private:
        broken.append("private reaches")
    if upward:
        broken.append("core importing integrations")
    if root_names() > ROOT_NAMES_LIMIT:
        broken.append(f"more than {ROOT_NAMES_LIMIT} root __all__ names")
    if len(modules) > MODULES_LIMIT:
        broken.append(f"more than {MODULES_LIMIT} modules")
    if len(used) > EXAMPLE_MODULES_LIMIT:
        broken.append(f"agent_backend imports more than {EXAMPLE_MODULES_LIMIT} netra modules")
    if len(local) > LOCAL_IMPORT_LIMIT:
        broken.append(f"more than {LOCAL_IMPORT_LIMIT} function-local project imports")
    if broken:
        print("layering check failed: " + ", ".join(broken), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
