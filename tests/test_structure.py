"""The core's structure, checked from the source with ast: no import cycles inside ssl_bench/ (lazy and
TYPE_CHECKING imports count too), no function over 60 lines, no module over 300 lines, and ssl-bench's own code
never imports a module by its old (pre-sub-package) path."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"ssl_bench": ROOT / "ssl_bench", "ssl_bench.methods": ROOT / "methods",
                "ssl_bench.backbones": ROOT / "backbones", "ssl_bench.evaluations": ROOT / "evaluations",
                "ssl_bench.published": ROOT / "results" / "published"}
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 300


def _modules(pkg: str = "ssl_bench") -> dict[str, Path]:
    base = PACKAGE_DIRS[pkg]
    out = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join([pkg, *parts])
        if pkg == "ssl_bench" and any(name.startswith(p + ".") or name == p for p in PACKAGE_DIRS if p != pkg):
            continue
        out[name] = path
    return out


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of `known` that `name` imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name if is_pkg else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import a.b.c` depends on a.b.c, or on its nearest known parent
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {m: _imported(m, p, known) for m, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's __init__ importing its own submodules (re-exports) is not a cycle with them."""
    return {m: {t for t in deps if not m.startswith(t + ".")} for m, deps in graph.items()}


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_core():
    found = cycles(_without_package_inits(import_graph()))
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


ROOMS = ("config", "run", "engine", "evalkit", "weights", "report", "cli", "data")
FOUNDATION = ("errors", "validate", "jsonl", "registry", "distributed", "_moved")


def room(module: str) -> str:
    """The room a core module lives in: its sub-package, `foundation` or `contracts` (the plugin-facing
    top-level modules: method, evaluation, heads, metrics, presets, create)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    if parts[-1] in ("__main__", "api"):
        return "cli"  # the interfaces: the command line and the notebook API
    return "foundation" if len(parts) == 1 or parts[1] in FOUNDATION else "contracts"


def test_rooms_import_each_other_without_cycles():
    """Rooms form layers: no two rooms import each other, directly or around a loop (docs/architecture.md)."""
    rooms: dict[str, set[str]] = {}
    for m, deps in import_graph().items():
        rooms.setdefault(room(m), set()).update(room(d) for d in deps if room(d) != room(m))
    found = cycles(rooms)
    assert not found, "rooms importing each other: " + "; ".join(" <-> ".join(c) for c in found)
    assert not rooms["foundation"] - {"foundation"}, rooms["foundation"]  # foundations import no room


def _all_source_files() -> list[Path]:
    files = []
    for base in [*PACKAGE_DIRS.values(), ROOT / "tests", ROOT / "benchmarks", ROOT / "examples"]:
        files += [p for p in base.rglob("*.py") if ".venv" not in p.parts]
    return sorted(set(files))


@pytest.mark.parametrize("path", [p for p in _all_source_files() if p.is_relative_to(ROOT / "ssl_bench")
                                  or p.parent.name in ("methods", "backbones", "evaluations", "losses")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_sizes(path: Path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            assert n <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name} is {n} lines"


def test_own_code_uses_new_module_paths():
    from ssl_bench._moved import MOVED

    bad = []
    for path in _all_source_files():
        if path.name in ("_moved.py", "test_structure.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for n in names:
                if any(n == old or n.startswith(old + ".") for old in MOVED):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {n}")
    assert not bad, bad


def test_old_paths_give_the_moved_module():
    import importlib
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("ssl_bench.probe")
        old_vocab = importlib.import_module("ssl_bench.tables.vocab")
    from ssl_bench.evalkit import probe
    from ssl_bench.report.tables import vocab

    assert old is probe and old_vocab is vocab
    assert any(issubclass(w.category, DeprecationWarning) and "evalkit.probe" in str(w.message) for w in caught)
