"""
What a DAG file pays to import the provider's operators and sensors, next to dbt Cloud's operator module.

Both sides run in fresh interpreters under ``python -X importtime``. Each first imports what any provider's DAG
file needs anyway (``airflow.sdk`` on Airflow 3, and the compat base classes), prints a marker, then imports its
own modules: every module of ``airflow_provider_edgeimpulse.operators`` and ``.sensors`` (whatever exists today)
on one side, ``airflow.providers.dbt.cloud.operators.dbt`` on the other. Only imports after the marker count, and any
``airflow.*`` module other than ``airflow.providers.dbt*`` counts as zero together with everything it imports
(Airflow's own cost, not the provider's). Third-party libraries a provider pulls in (aiohttp, tenacity, ...) count
for it. Sides alternate; each figure is the median of ``--repeats`` runs after one untimed warm-up each.
"""

from __future__ import annotations

import importlib.util
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

from _common import REPO, emit, note, parser, rounded

MARKER = "@@bench-import-marker@@"
PRELUDE = (
    "from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS\n"
    "if AIRFLOW_V_3_0_PLUS:\n"
    "    import airflow.sdk\n"
    "from airflow.providers.common.compat.sdk import BaseHook, BaseOperator, BaseSensorOperator\n"
    f"import importlib, sys\nsys.stderr.write({MARKER!r} + '\\n')\nsys.stderr.flush()\n"
)
DBT_MODULES = ["airflow.providers.dbt.cloud.operators.dbt"]
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


@dataclass
class Node:
    name: str
    self_us: int
    children: list[Node] = field(default_factory=list)


def provider_modules() -> list[str]:
    """Every operator and sensor module present now (other people are still adding them)."""
    names: list[str] = []
    for package in ("operators", "sensors"):
        folder = REPO / "airflow_provider_edgeimpulse" / package
        names.append(f"airflow_provider_edgeimpulse.{package}")
        names += sorted(
            f"airflow_provider_edgeimpulse.{package}.{path.stem}"
            for path in folder.glob("*.py")
            if path.stem != "__init__"
        )
    return names


def counted(name: str) -> bool:
    return not (name == "airflow" or name.startswith("airflow.")) or name.startswith("airflow.providers.dbt")


def parse(stderr: str) -> list[Node]:
    """The import tree printed after the marker (importtime prints a module after its children, indented)."""
    after = stderr.split(MARKER, 1)[1] if MARKER in stderr else ""
    pending: dict[int, list[Node]] = {}
    roots: list[Node] = []
    for line in after.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        depth = len(match.group(3)) // 2
        node = Node(match.group(4), int(match.group(1)), pending.pop(depth + 1, []))
        (roots if depth == 0 else pending.setdefault(depth, [])).append(node)
    return roots


def attributed_us(node: Node) -> int:
    if not counted(node.name):
        return 0
    return node.self_us + sum(attributed_us(child) for child in node.children)


def total_us(node: Node) -> int:
    return node.self_us + sum(total_us(child) for child in node.children)


def measure(modules: list[str]) -> tuple[float, float]:
    """(attributed ms, everything-after-the-marker ms) for one fresh interpreter."""
    code = PRELUDE + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    if proc.returncode:
        raise RuntimeError(f"importing {modules} failed:\n{proc.stderr[-3000:]}")
    roots = parse(proc.stderr)
    if not roots:
        raise RuntimeError("no import timings after the marker; was -X importtime honoured?")
    return sum(map(attributed_us, roots)) / 1000.0, sum(map(total_us, roots)) / 1000.0


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--repeats", type=int, default=7)
    opts = args.parse_args()
    repeats = 1 if opts.quick else opts.repeats
    ours_modules = provider_modules()
    has_dbt = importlib.util.find_spec("airflow.providers.dbt.cloud") is not None
    if not has_dbt:
        note("apache-airflow-providers-dbt-cloud is not installed (pip install -e '.[bench]'); no comparison")
    note(f"provider modules: {', '.join(ours_modules)}")
    if not opts.quick:
        measure(ours_modules)  # warm-up: bytecode caches and the OS page cache, for both sides alike
        if has_dbt:
            measure(DBT_MODULES)
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for _ in range(repeats):
        ours.append(measure(ours_modules))
        if has_dbt:
            theirs.append(measure(DBT_MODULES))
    provider_ms = statistics.median(a for a, _ in ours)
    dbt_ms = statistics.median(a for a, _ in theirs) if theirs else None
    emit(
        {
            "repeats": repeats,
            "provider_ms": rounded(provider_ms, 2),
            "dbt_cloud_ms": rounded(dbt_ms, 2),
            "ratio": rounded(provider_ms / dbt_ms, 3) if dbt_ms else None,
            "provider_all_ms": rounded(statistics.median(b for _, b in ours), 2),
            "dbt_cloud_all_ms": rounded(statistics.median(b for _, b in theirs), 2) if theirs else None,
        }
    )


if __name__ == "__main__":
    main()
