"""Every exception hsmaudit defines derives from `hsmaudit.errors.HsmauditError` (issue 14, item 4).

The walk imports each module of the package, so a new exception class anywhere is checked without
being listed here. Private classes (a leading `_`: never raised past their module) are left out;
`__main__` modules are not imported because importing one runs it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hsmaudit
from hsmaudit.config import ConfigError
from hsmaudit.errors import HsmauditError
from hsmaudit.sinks.errors import HecRetryableError
from hsmaudit.store.query import FilterError


def _exception_classes() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(hsmaudit.__path__, "hsmaudit."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_exception_class_of_hsmaudit_derives_from_hsmauditerror() -> None:
    classes = _exception_classes()
    # GIVEN the walk found the families (so it did not silently import nothing)
    assert len(classes) >= 27, sorted(classes)
    # THEN each one is an HsmauditError
    assert [name for name, cls in classes.items() if not issubclass(cls, HsmauditError)] == []


def test_the_root_keeps_the_old_bases_so_existing_excepts_still_catch() -> None:
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, HsmauditError)
    assert issubclass(FilterError, ValueError)
    try:
        raise HecRetryableError("HEC busy")
    except HsmauditError as caught:
        assert isinstance(caught, HecRetryableError)
