"""The package reads one way: data -> generate -> finetune -> evaluate -> report -> regress, over
shared ground floors. This test reads every import of the package (its AST, nothing is run) and
fails when a module imports upward, imports another package's private module, or when only-cli
knowledge (Hydra) leaks below the CLI."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "harness"

# unit -> the harness units it may import (besides itself). A unit is a top-level module or package.
FLOORS = {"errors", "text", "prompts", "usage", "_progress", "config", "cache", "stats", "runs", "guards", "sources"}
ALLOWED = {
    "errors": set(),
    "text": set(),
    "prompts": set(),
    "usage": set(),
    "_progress": set(),
    "stats": set(),
    "config": {"errors"},
    "cache": {"errors"},
    "guards": {"errors", "cache"},
    "sources": {"errors"},
    "runs": {"config", "errors", "sources"},
    "_init_project": {"cache", "errors"},
    "data": {"errors", "text", "config", "cache"},
    "models": {"errors", "config", "cache"},
    "generate": FLOORS | {"data", "models"},
    "finetune": FLOORS | {"models"},
    "evaluate": FLOORS | {"data", "models"},
    "report": FLOORS,  # a report reads finished runs: no stage
    "regress": FLOORS | {"report"},
    "preflight": FLOORS | {"data", "models", "generate", "finetune", "evaluate", "report", "regress"},
    "testing": FLOORS | {"regress"},  # the gate as a pytest assertion / plugin (harness.testing)
    "pipeline": FLOORS | {"data", "models", "generate", "finetune", "evaluate", "report", "regress", "preflight"},
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports():
    """(importing module, imported harness module, line) for every import in the package."""
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts)
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        if path.name == "__init__.py":
            mod = mod.removesuffix(".__init__")
            pkg = mod
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [a.name for a in node.names]
                if target.startswith("harness"):
                    # `from . import _x` names a module too
                    yield mod, target, names, node.lineno
                else:
                    yield mod, target, names, node.lineno
            elif isinstance(node, ast.Import):
                for a in node.names:
                    yield mod, a.name, [], node.lineno


def test_no_upward_imports():
    bad = []
    for mod, target, _, line in _imports():
        if not target.startswith("harness."):
            continue
        src, dst = _unit(mod), _unit(target)
        if src == dst or src == "cli" or src not in ALLOWED:
            continue
        if dst not in ALLOWED[src]:
            bad.append(f"{mod}:{line} imports {target} ({src} may import: {', '.join(sorted(ALLOWED[src])) or 'nothing'})")
    assert not bad, "\n".join(bad)


def test_every_unit_is_placed():
    units = {_unit(m) for m, *_ in _imports()} - {"", "cli", "__init__"}
    assert units <= set(ALLOWED) | {"cli"}, f"place these in ALLOWED: {units - set(ALLOWED)}"


def test_no_other_package_private_module_is_imported():
    bad = []
    for mod, target, names, line in _imports():
        if not target.startswith("harness."):
            continue
        if _unit(mod) == _unit(target):
            continue  # a package's own private modules are its business
        private = [p for p in target.split(".")[2:] if p.startswith("_")]
        if private:
            bad.append(f"{mod}:{line} imports {target} (use what harness.{_unit(target)} exports)")
    assert not bad, "\n".join(bad)


def test_only_the_cli_knows_hydra():
    bad = [f"{mod}:{line} imports {target}" for mod, target, _, line in _imports()
           if target.split(".")[0] == "hydra" and _unit(mod) != "cli"]
    assert not bad, "\n".join(bad)
