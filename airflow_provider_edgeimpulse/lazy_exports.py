"""
Package exports that load on first use.

DAG files import the operators, sensors and triggers packages on every parse, and each class module pulls in
Airflow's operator or trigger machinery: a package built with :func:`lazy_exports` imports none of its modules
until one of its names is asked for.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """
    The module-level ``__getattr__`` and ``__dir__`` of ``package`` for ``names`` (class name -> module name).

    Use as ``__getattr__, __dir__ = lazy_exports(__name__, {"SomeClass": "its_module"})``.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
