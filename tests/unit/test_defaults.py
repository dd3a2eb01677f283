"""Defaults are stated once, in `hsmaudit.defaults`: the settings table, `Settings` and the HEC
client's policies read them from there and cannot drift apart."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from hsmaudit import defaults
from hsmaudit.config import SETTINGS, Settings

CONFIG = Path(__file__).resolve().parents[2] / "src" / "hsmaudit" / "config.py"


def test_every_setting_default_is_the_defaults_module_value() -> None:
    settings = Settings()
    for spec in SETTINGS:
        assert getattr(settings, spec.name) == spec.default, spec.name
        if spec.default is not None:
            assert getattr(defaults, spec.name.upper()) == spec.default, spec.name


def test_config_states_no_default_value_itself() -> None:
    """Each default in config.py is `None` or a `defaults.NAME`, never a literal of its own."""
    tree = ast.parse(CONFIG.read_text())
    stated: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SettingSpec":
            stated.append(ast.unparse(node.args[3]))
        elif isinstance(node, ast.ClassDef) and node.name == "Settings":
            names = {f.name for f in fields(Settings)} & {spec.name for spec in SETTINGS}
            stated.extend(
                ast.unparse(item.value)
                for item in node.body
                if isinstance(item, ast.AnnAssign)
                and isinstance(item.target, ast.Name)
                and item.target.id in names
                and item.value is not None
                and not isinstance(item.value, ast.Call)  # field(default=None, repr=False)
            )
    assert len(stated) >= len(SETTINGS)
    assert [text for text in stated if text != "None" and not text.startswith("defaults.")] == []
