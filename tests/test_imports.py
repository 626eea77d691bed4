"""The spine has no import cycles, and Ray is imported at module level only where the layers allow it.

docs/design.md ("Layers") describes the layers: errors, config, ops, types at the bottom; then envs, rewards,
tools, data, engines; then agent, algorithms, preflight; then actors; then groups, cluster, driver; then the
CLI. An import goes down. Function-local imports count too: a cycle hidden inside a function still ties two
layers together (issue 13, part 1).
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rltrain", "actors", "rewards")
RAY_AT_MODULE_LEVEL = ("actors.*", "rltrain.groups", "rltrain.placement", "rltrain.cluster*", "rltrain.driver",
                       "rltrain.weights", "rltrain.jobs", "rltrain.telemetry*", "rltrain.envs.rllib")
"""Modules that may `import ray` at module level: the actors, the groups that place them, the cluster start-up, the
driver, the weight sync (object-store refs), job submission and telemetry (Ray metrics); and the RLlib adapter,
whose base class is RLlib's (nothing in rltrain imports it: RLlib users do)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, tuple[Path, ast.Module]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in files}


def imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted names an import statement may load (`from a import b` may load module `a.b`)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:  # relative: resolve against this module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        return [base, *(f"{base}.{a.name}" for a in node.names)]
    return []


def owner(name: str, modules: set[str]) -> str | None:
    """The project module that `name` (a module or a name inside one) belongs to."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that can run: all of `ast.walk` except the bodies of `if TYPE_CHECKING:` (annotations only)."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        children = list(ast.iter_child_nodes(node))
        if _type_checking(node):
            children = [node.test, *node.orelse]
        todo.extend(children)
    return out


def import_graph(found: dict[str, tuple[Path, ast.Module]]) -> dict[str, set[str]]:
    """module -> project modules it imports anywhere in its body, functions included (not `if TYPE_CHECKING:`
    blocks: they never run, and annotating with a type from a module above is not a dependency at run time)."""
    modules = set(found)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, (path, tree) in found.items():
        for node in runtime_nodes(tree):
            for name in imported_names(node, module, path.name == "__init__.py"):
                target = owner(name, modules)
                # importing one's own package (its __init__) is how a submodule reaches siblings: not an edge up
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def module_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements that run on import: the body, and inside top-level if/try/with blocks, but not under
    `if TYPE_CHECKING:` (which never runs) nor inside functions and classes' methods."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            if not _type_checking(node):
                out += module_level_statements(node.body)
            out += module_level_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, *(h.body for h in node.handlers), node.orelse, node.finalbody):
                out += module_level_statements(block)
        elif isinstance(node, ast.With):
            out += module_level_statements(node.body)
    return out


def ray_at_module_level(found: dict[str, tuple[Path, ast.Module]]) -> list[str]:
    bad = []
    for module, (path, tree) in found.items():
        for node in module_level_statements(tree.body):
            names = imported_names(node, module, path.name == "__init__.py")
            if any(n == "ray" or n.startswith("ray.") for n in names):
                bad.append(module)
    return sorted(set(bad))


def test_no_import_cycles() -> None:
    found = sources()
    assert len(found) > 50, "the source tree was not found"
    assert cycles(import_graph(found)) == []


def test_ray_only_where_the_layers_allow() -> None:
    outside = [m for m in ray_at_module_level(sources()) if not any(fnmatch.fnmatch(m, p) for p in RAY_AT_MODULE_LEVEL)]
    assert outside == [], (f"{outside} import ray at module level; only {RAY_AT_MODULE_LEVEL} may (docs/design.md, "
                           f"Layers): move the Ray part into one of those, or import it where it is used")


def test_the_checks_can_fail() -> None:
    """A cycle through a function-local import (not through `if TYPE_CHECKING:`), and Ray under
    `if TYPE_CHECKING:` vs at module level."""
    a = ast.parse("import b\n")
    b = ast.parse("def f():\n    from a import x\n")
    c = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import y\n")
    graph = import_graph({"a": (Path("a.py"), a), "b": (Path("b.py"), b), "c": (Path("c.py"), c)})
    assert cycles(graph) == [["a", "b"]]
    assert graph["c"] == set()
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import ray\n")
    eager = ast.parse("try:\n    import ray.util\nexcept ImportError:\n    pass\n")
    assert ray_at_module_level({"t": (Path("t.py"), typed), "e": (Path("e.py"), eager)}) == ["e"]
