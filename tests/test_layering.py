"""
Imports point down: a lower layer never imports a higher one (the layers of docs/architecture.md).

Every import of the package is read from the source (``ast``), also those inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency, it only fails later.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_edgeimpulse"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
CODEC = f"{PACKAGE}.socketio_codec"
EMULATOR = f"{PACKAGE}.emulator"

# The floor each part of the package stands on; a module may import its own floor's package or lower ones.
GROUND = 0
LAYER_OF_PART = {
    "": GROUND,  # the package's __init__ (its version)
    "exceptions": GROUND,
    "wire": GROUND,
    "validation": GROUND,
    "compat": GROUND,
    "storage": GROUND,  # where a file goes in or out: a local path or Airflow's object storage
    "trigger_events": GROUND,
    "studio": GROUND,
    "get_provider_info": GROUND,
    "socketio_codec": GROUND,
    "links": GROUND,  # the Studio URLs and the operators' Studio button: nothing of the package below it
    "lazy_exports": GROUND,  # the packages' exports, loaded on first use
    "hooks": 1,
    "jobs": 2,
    "new_samples": 2,
    "triggers": 3,
    "operators": 4,
    "sensors": 4,
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} imports {self.target} (line {self.line})"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(package: str, node: ast.ImportFrom) -> list[str]:
    """The modules a ``from ... import ...`` reaches: ``from pkg import mod`` names the submodule ``pkg.mod``."""
    if node.level:
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    targets = []
    for alias in node.names:
        candidate = f"{module}.{alias.name}"
        relative = Path(*candidate.split("."))
        is_module = (ROOT.parent / relative).with_suffix(".py").is_file() or (ROOT.parent / relative).is_dir()
        targets.append(candidate if is_module else module)
    return list(dict.fromkeys(targets))


def package_imports() -> list[Import]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        source = module_name(path)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = resolve(package, node)
            else:
                continue
            found += [Import(source, t, node.lineno) for t in targets if t == PACKAGE or t.startswith(f"{PACKAGE}.")]
    return found


def part(module: str) -> str:
    return module[len(PACKAGE) + 1 :].split(".")[0] if module != PACKAGE else ""


def is_emulator(module: str) -> bool:
    return module == EMULATOR or module.startswith(f"{EMULATOR}.")


def violation(imp: Import) -> str | None:
    """Why this import breaks the layering, or ``None``."""
    if is_emulator(imp.source):
        if is_emulator(imp.target) or imp.target == CODEC:
            return None
        return "the emulator imports only the codec"
    if is_emulator(imp.target):
        return "product code never imports the emulator"
    if imp.source == CODEC:
        return "the codec imports nothing of the package"
    source, target = part(imp.source), part(imp.target)
    if source not in LAYER_OF_PART or target not in LAYER_OF_PART:
        return f"{source or target!r} has no layer: place it in LAYER_OF_PART and docs/architecture.md"
    if source == target:
        return None
    below, above = LAYER_OF_PART[target], LAYER_OF_PART[source]
    if below > above:
        return "a lower layer imports a higher one"
    if below == above and below != GROUND:
        return "siblings on one floor do not import each other (move the shared piece down)"
    return None


IMPORTS = package_imports()


def test_the_scan_sees_lazy_and_type_checking_imports() -> None:
    # The job sensor imports its trigger inside execute(); a scan of module-level imports only would miss it.
    assert any(i.source == f"{PACKAGE}.sensors.job" and i.target == f"{PACKAGE}.triggers.job" for i in IMPORTS), (
        "imports inside functions must be read too"
    )
    assert any(i.target == f"{PACKAGE}.new_samples.watermark" for i in IMPORTS), "`from pkg import module` must resolve"


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {part(module_name(path)) for path in ROOT.rglob("*.py")} - {"emulator"}
    assert parts <= set(LAYER_OF_PART), f"modules without a layer: {sorted(parts - set(LAYER_OF_PART))}"


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        (f"{PACKAGE}.hooks.edgeimpulse", f"{PACKAGE}.operators._params", "a lower layer imports a higher one"),
        (f"{PACKAGE}.hooks.edgeimpulse", f"{PACKAGE}.jobs.blocking", "a lower layer imports a higher one"),
        (f"{PACKAGE}.jobs.waiter", f"{PACKAGE}.triggers.job", "a lower layer imports a higher one"),
        (f"{PACKAGE}.sensors.job", f"{PACKAGE}.operators.resume", "siblings on one floor"),
        (f"{PACKAGE}.socketio_codec", f"{PACKAGE}.wire", "the codec imports nothing"),
        (f"{PACKAGE}.emulator.sockets", f"{PACKAGE}.exceptions", "the emulator imports only the codec"),
        (f"{PACKAGE}.operators.job", f"{PACKAGE}.emulator.handle", "product code never imports the emulator"),
    ],
)
def test_the_rules_reject_an_upward_import(source: str, target: str, reason: str) -> None:
    found = violation(Import(source, target, 1))
    assert found is not None and found.startswith(reason)


def test_imports_point_down() -> None:
    broken = [f"{imp}: {why}" for imp in IMPORTS if (why := violation(imp))]
    assert not broken, "\n".join(broken)


def import_cycles(imports: list[Import]) -> set[tuple[str, ...]]:
    """Every loop of modules that import each other, each named once (starting at its smallest name)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.source != imp.target:
            graph.setdefault(imp.source, set()).add(imp.target)
    loops: set[tuple[str, ...]] = set()

    def walk(start: str, path: list[str]) -> None:
        for nxt in graph.get(path[-1], ()):
            if nxt == start:
                loops.add(tuple(path))
            elif nxt > start and nxt not in path:
                walk(start, [*path, nxt])

    for module in sorted(graph):
        walk(module, [module])
    return loops


def test_import_cycles_are_found() -> None:
    loop = [Import("p.a", "p.b", 1), Import("p.b", "p.c", 1), Import("p.c", "p.a", 1)]
    assert import_cycles(loop) == {("p.a", "p.b", "p.c")}


def test_no_two_modules_import_each_other() -> None:
    # Within a floor too: a shared piece lives in a module both import, not in one of the two.
    assert not import_cycles(IMPORTS)
