"""The package's shape: imports only point down its layers (no cycle, even through an import
inside a function), every module says what it owns, and files and functions stay short."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pixelda"

# Lowest first; a module may import its own layer (without a cycle) and the layers below it.
LAYERS = [
    # The package itself holds __version__ and resolves its API names lazily (importlib, on
    # first use): loading it imports nothing of pixelda's.
    {"__init__", "errors", "fileio", "locks"},
    {"data", "models", "losses", "backbones", "grl", "sanity", "recipes", "loggers", "config"}
    | {"checkpoint", "distributed", "speed", "ownership", "flags"},
    {"helpers", "metrics", "validators", "judge", "schedules"},
    {"methods"},
    {"batches", "plots", "adversarial", "rundir", "writers", "runtime", "rundata"}
    | {"training", "exporting", "evaluation", "selection"},
    {"api"},
    {"cli", "train", "export", "evaluate", "select"},
]
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """pixelda modules `name` imports anywhere in its file (functions included); `from . import
    x` counts as importing the submodule x."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            subs = [f"{stem}.{a.name}" for a in node.names if f"{stem}.{a.name}" in MODULES]
            targets = subs if len(subs) == len(node.names) else [stem, *subs]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


def layer(name: str) -> int:
    parts = name.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    return next(i for i, group in enumerate(LAYERS) if key in group)


def test_every_module_has_a_layer():
    assert [m for m in MODULES if not any(layer_of_key(m) in g for g in LAYERS)] == []


def layer_of_key(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    upward = sorted(t for t in imports(name) if layer(t) > layer(name))
    assert upward == [], f"{name} (layer {layer(name)}) imports from above: {upward}"


def test_no_import_cycle():
    graph = {m: imports(m) for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = [*path[path.index(t) :], t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_import_scan_sees_imports_inside_functions(tmp_path, monkeypatch):
    fake = tmp_path / "pixelda" / "methods" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text('"""x"""\n\ndef f():\n    from ..api import load\n    from . import pixelda\n')
    monkeypatch.setitem(MODULES, "pixelda.methods.fake", fake)
    monkeypatch.setattr("tests.test_architecture.PACKAGE", tmp_path / "pixelda")
    assert imports("pixelda.methods.fake") == {"pixelda.api", "pixelda.methods.pixelda"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_opens_with_a_docstring(name):
    assert ast.get_docstring(ast.parse(MODULES[name].read_text())), f"{name} has no docstring"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_are_short(name):
    source = MODULES[name].read_text()
    assert len(source.splitlines()) <= MAX_FILE_LINES, f"{name}: over {MAX_FILE_LINES} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_command_modules_refuse_import_so_the_api_functions_stay():
    import pixelda

    for name in ("train", "export", "evaluate", "select"):
        with pytest.raises(ImportError, match=f"python -m pixelda.{name}"):
            __import__(f"pixelda.{name}")
        assert callable(getattr(pixelda, name))
