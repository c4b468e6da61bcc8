"""The package's imports run one way, down the data's path: no module imports one above it, so no
import cycle, function-level imports included."""

import ast
from pathlib import Path

import rnn_cli

PACKAGE = Path(rnn_cli.__file__).parent
# Bottom first: a module may import only modules of earlier layers (or its own layer's earlier ones).
LAYERS = [
    ["errors", "stopping", "reference", "metrics", "parsing", "encoding", "pooling", "pairs", "recurrence", "projected",
     "gradients", "ensemble"],
    ["files", "own_files", "vectors", "compiled", "storage"],
    ["config", "corpus", "backends", "space"],
    ["cache"],
    ["aclimdb", "data", "runs", "checkpoints", "loading", "memory"],
    ["batches", "model", "process_settings", "run_rows", "plots", "card", "publish"],
    ["inference", "callbacks"],
    ["training"],
    ["evaluate", "seeds", "predict", "explain", "compare", "export", "baseline"],
    ["launch", "serve", "study", "tune", "tune_report"],
    ["api", "cli"],
]


def package_imports(path: Path) -> set[str]:
    """The rnn_cli modules that `path` imports anywhere in it (top level, functions, TYPE_CHECKING), by
    absolute or relative name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:  # relative: `from . import a`, `from .a import x`
            found |= ({node.module.split(".")[0]} if node.module else
                      {alias.name for alias in node.names if (path.parent / f"{alias.name}.py").exists()})
        elif isinstance(node, ast.ImportFrom) and node.module == "rnn_cli":
            found |= {alias.name for alias in node.names if (path.parent / f"{alias.name}.py").exists()}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnn_cli."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("rnn_cli.")}
    return found - {path.stem}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    return {path.stem: package_imports(path) for path in sorted(package.glob("*.py")) if path.stem != "__init__"}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, str] = {}

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "open":
                return [*path[path.index(other):], other]
            if other not in state and (cycle := visit(other, [*path, other])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_one_hidden_in_a_function(tmp_path):
    (tmp_path / "a.py").write_text("from rnn_cli import b\n")
    (tmp_path / "b.py").write_text("def late():\n    from rnn_cli.a import thing\n")
    (tmp_path / "c.py").write_text("import rnn_cli.a\n")
    assert import_graph(tmp_path) == {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert find_cycle(import_graph(tmp_path)) == ["a", "b", "a"]


def test_relative_imports_count_too(tmp_path):
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def late():\n    from .c import thing\n")
    (tmp_path / "c.py").write_text("from .a import x\nfrom . import missing\n")
    assert import_graph(tmp_path) == {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert find_cycle(import_graph(tmp_path)) == ["a", "b", "c", "a"]


def test_every_module_has_a_layer_and_imports_only_below_it():
    rank = {module: (level, i) for level, names in enumerate(LAYERS) for i, module in enumerate(names)}
    graph = import_graph()
    assert set(graph) == set(rank), "a module was added or removed: place it in LAYERS"
    upward = [f"{module} imports {other}" for module, others in graph.items() for other in others
              if rank[other] >= rank[module]]
    assert upward == []
