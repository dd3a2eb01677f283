"""`sinks/hec/__init__.py`: importing a submodule loads no other, and the old re-exports still resolve.

`hsmaudit serve` and `demo` import `sinks.hec.answers` (HEC's codes) and nothing else of the
client; the package file runs for that import, so it must not pull in the client and urllib3.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from hsmaudit.sinks import hec


def test_every_old_name_resolves_to_the_object_of_its_submodule() -> None:
    for name, module in hec._MODULE_OF.items():
        assert getattr(hec, name) is getattr(importlib.import_module(f"hsmaudit.sinks.hec.{module}"), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'HecClientt'"):
        _ = hec.HecClientt


def test_the_answers_table_loads_no_hec_client() -> None:
    code = (
        "import sys\n"
        "import hsmaudit.sinks.hec.answers\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'urllib3' or m.startswith('hsmaudit.sinks.hec.'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "hsmaudit.sinks.hec.answers"


def test_no_module_of_ours_imports_a_name_from_the_package_itself() -> None:
    """The Lambda zip builder follows imports, not the lazy table: a handler module importing
    `HecClient` from `hsmaudit.sinks.hec` would ship without `client.py`."""
    source = Path(hec.__file__).parents[2]
    submodules = {path.stem for path in Path(hec.__file__).parent.glob("*.py")}
    found = [
        f"{path.relative_to(source)}:{node.lineno} {alias.name}"
        for path in sorted(source.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_bytes()))
        if isinstance(node, ast.ImportFrom) and node.module == "hsmaudit.sinks.hec"
        for alias in node.names
        if alias.name not in submodules
    ]
    assert found == []
