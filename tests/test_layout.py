"""The shape of the code, as STYLE.md and DESIGN §3 describe it: checked, so it stays true.

- `runs/` is grouped by role: at most ten modules stand directly in it;
- no module passes 450 lines (the standalone `ingest/client.py` excepted);
- `runs` never imports `ingest`;
- no import cycle, at module level or hidden in a function (imports under TYPE_CHECKING aside);
- each cap's name is written in the cap table and nowhere else in the code (migrations, which
  record history, aside).
"""

import ast
from pathlib import Path

import pytest

from runs.engine.caps import TABLE

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runs", "ingest", "agentops")
MAX_LINES = 450
LONG_ALLOWED = {"ingest/client.py"}  # stdlib-only, copied whole into other projects


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path) -> set[str]:
    """The project modules `name` imports anywhere in its body (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_runs_holds_at_most_ten_modules_of_its_own():
    direct = sorted(p.name for p in (ROOT / "runs").glob("*.py"))
    assert len(direct) <= 10, direct


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_over_450_lines(name):
    path = MODULES[name]
    relative = str(path.relative_to(ROOT))
    if relative in LONG_ALLOWED or "/migrations/" in relative:
        return
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{relative} has {lines} lines; split it along a line a reader sees"


def test_runs_never_imports_ingest():
    wrong = {n: sorted(m for m in deps if m.startswith("ingest")) for n, deps in GRAPH.items()}
    wrong = {n: deps for n, deps in wrong.items() if n.startswith("runs") and deps}
    assert not wrong


def test_there_is_no_import_cycle():
    # Tarjan's strongly connected components: any with two or more modules is a cycle.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in GRAPH[node]:
            if dep not in index:
                connect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            connect(node)
    assert cycles == []


def test_the_graph_sees_imports_inside_functions():
    # The check above is only worth something if it reads function-level imports too.
    source = "def f():\n    from runs.models import Run\n"
    probe = ROOT / "runs" / "__probe_layout__.py"
    probe.write_text(source)
    try:
        assert "runs.models" in _imports("runs.__probe_layout__", probe)
    finally:
        probe.unlink()


@pytest.mark.parametrize("cap", [cap.name for cap in TABLE])
def test_a_cap_is_named_only_in_the_cap_table(cap):
    if cap == "max_tokens":
        return  # also the model parameter's name, which providers and agents pass on
    naming = sorted(
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if cap in path.read_text() and "/migrations/" not in str(path)
    )
    assert naming == ["runs/engine/caps.py"]
