"""The tree is the data flow: who may import whom (docs/architecture.md, shared style guide).

0. `errors` (the root `HsmauditError`), `booleans` (the true/false words) and `defaults` (every
   setting's default) import nothing of ours; every layer may import them.
1. `records` (and the stdlib-only `config`) import nothing of ours but layer 0.
2. `sources`, `sinks`, `detect`, `store` import layer 1 only, not each other.
3. `aws`, `server`, `simulate`, `splunk` compose layers 1-2 and do not import each other.
4. `ops` composes layers 1-3 into what an operator runs (engines without Typer/Rich).
5. `cli` may import anything; nothing imports `cli`.

Checked on the source with `ast`, so imports inside functions count too, and so does a string
passed to `importlib.import_module(...)` / `import_module(...)` (style.md: that is an import).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "hsmaudit"

LAYER = {
    "errors": 0,
    "booleans": 0,
    "defaults": 0,
    "records": 1,
    "config": 1,
    "sources": 2,
    "sinks": 2,
    "detect": 2,
    "store": 2,
    "aws": 3,
    "server": 3,
    "simulate": 3,
    "splunk": 3,
    "ops": 4,
    "cli": 5,
}


def _part(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "hsmaudit" or len(parts) < 2:
        return None
    return parts[1]


def _is_import_module(call: ast.Call) -> bool:
    """`importlib.import_module(...)`, `import_module(...)` or `__import__(...)`."""
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr == "import_module"
    return isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}


def _source_imports(source: str, filename: str = "<string>") -> set[str]:
    tree = ast.parse(source, filename=filename)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _is_import_module(node) and node.args:
            name = node.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.add(name.value)
    return found


def _imports(path: Path) -> set[str]:
    return _source_imports(path.read_text(), filename=str(path))


def _upward(own: str, modules: set[str]) -> list[str]:
    """The modules in `modules` that a file of package `own` may not import."""
    problems = []
    for module in sorted(modules):
        other = _part(module)
        if other is None or other == own or other not in LAYER:
            continue
        if other == "cli" or LAYER[other] >= LAYER[own]:
            problems.append(f"{module} ({own} is layer {LAYER[own]}, {other} is {LAYER[other]})")
    return problems


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        own = relative.parts[0].removesuffix(".py")
        if own not in LAYER:
            continue
        problems.extend(f"{relative}: imports {found}" for found in _upward(own, _imports(path)))
    return problems


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LAYER), packages - set(LAYER)


def test_imports_follow_the_layers() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    "source",
    [
        'import importlib\n\ndef f():\n    return importlib.import_module("hsmaudit.aws.s3spool")\n',
        'from importlib import import_module\n\nMOD = import_module("hsmaudit.ops.recover")\n',
        "def f():\n    from hsmaudit.server import app\n",
    ],
)
def test_the_checker_catches_a_planted_upward_import(source: str) -> None:
    """A `sinks` file loading a higher layer, by statement or by string, is reported."""
    assert _upward("sinks", _source_imports(source)) != []


def test_the_checker_allows_a_downward_string_import() -> None:
    source = 'import importlib\n\nMOD = importlib.import_module("hsmaudit.records.parse")\n'
    assert _source_imports(source) >= {"hsmaudit.records.parse"}
    assert _upward("sinks", _source_imports(source)) == []


@pytest.mark.parametrize("package", ["records", "sources", "sinks", "detect", "store", "aws"])
def test_lambda_path_init_files_import_nothing(package: str) -> None:
    init = PACKAGE / package / "__init__.py"
    if init.exists():
        assert _imports(init) == set(), (
            f"{init} imports something: a parent __init__ runs for every child import"
        )
