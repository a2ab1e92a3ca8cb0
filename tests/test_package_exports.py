"""Every operator, sensor and trigger class is exported by its package and declared in get_provider_info."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator
from airflow.triggers.base import BaseTrigger

from airflow_provider_edgeimpulse.get_provider_info import get_provider_info

KINDS = {"operators": BaseOperator, "sensors": BaseSensorOperator, "triggers": BaseTrigger}
PACKAGE = "airflow_provider_edgeimpulse"


def public_modules(package: str) -> list[ModuleType]:
    found = importlib.import_module(f"{PACKAGE}.{package}")
    return [
        importlib.import_module(f"{found.__name__}.{info.name}")
        for info in pkgutil.iter_modules(found.__path__)
        if not info.name.startswith("_")
    ]


def classes_of(package: str) -> dict[str, type]:
    """The public classes of that kind defined in the package's public modules, by name."""
    base = KINDS[package]
    return {
        name: cls
        for module in public_modules(package)
        for name, cls in vars(module).items()
        if inspect.isclass(cls) and cls.__module__ == module.__name__ and issubclass(cls, base)
        if not name.startswith("_")
    }


@pytest.mark.parametrize("package", sorted(KINDS))
def test_every_class_is_exported_by_its_package(package):
    exported = importlib.import_module(f"{PACKAGE}.{package}")
    classes = classes_of(package)
    assert classes, f"no {package} found: the discovery itself is broken"
    assert sorted(exported.__all__) == sorted(classes), f"{package}/__init__.py exports another set of classes"
    for name, cls in classes.items():
        assert getattr(exported, name) is cls
        assert name in dir(exported)


@pytest.mark.parametrize("package", sorted(KINDS))
def test_every_class_module_is_declared_in_get_provider_info(package):
    (entry,) = get_provider_info()[package]
    declared = set(entry["python-modules"])
    holding = {cls.__module__ for cls in classes_of(package).values()}
    assert holding == declared, f"get_provider_info()[{package!r}] does not list the modules that hold the classes"


def test_an_unknown_name_is_an_attribute_error():
    import airflow_provider_edgeimpulse.sensors as sensors

    with pytest.raises(AttributeError, match="has no attribute 'EdgeImpulseJobSenser'"):
        _ = sensors.EdgeImpulseJobSenser  # type: ignore[attr-defined]


def test_the_packages_import_no_class_module_until_a_name_is_used():
    """DAG files import these packages on every parse: the class modules load only when a class is asked for."""
    script = f"""
import json, sys
import {PACKAGE}.operators, {PACKAGE}.sensors, {PACKAGE}.triggers
before = sorted(m for m in sys.modules if m.startswith({tuple(f"{PACKAGE}.{kind}." for kind in KINDS)!r}))
from {PACKAGE}.sensors import EdgeImpulseJobSensor
print(json.dumps({{"before": before, "after": "{PACKAGE}.sensors.job" in sys.modules}}))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"before": [], "after": True}


def test_the_readme_shows_an_import_line_for_every_class():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    missing = [
        f"from {PACKAGE}.{package} import {name}"
        for package in sorted(KINDS)
        for name in sorted(classes_of(package))
        if f"from {PACKAGE}.{package} import {name}\n" not in readme
    ]
    assert not missing, f"README.md lacks these import lines: {missing}"
