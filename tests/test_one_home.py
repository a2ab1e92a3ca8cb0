"""
Each Studio name has one home (``studio.py``); the rest of the package imports it rather than spelling it again.

A second copy is how two lists drift apart: a category added to one operator and not to the sensor's filter.
Read from the source with ``ast``; the emulator is left out (a separate wing that imports only the codec).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from airflow_provider_edgeimpulse import studio

ROOT = Path(__file__).resolve().parents[1] / "airflow_provider_edgeimpulse"
HOME = ROOT / "studio.py"


def product_sources() -> list[Path]:
    return [p for p in sorted(ROOT.rglob("*.py")) if "emulator" not in p.relative_to(ROOT).parts]


def strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def places(predicate) -> list[str]:  # type: ignore[no-untyped-def]
    found = []
    for path in product_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if predicate(node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def literal_tuple_holding(*names: str):  # type: ignore[no-untyped-def]
    return lambda node: isinstance(node, ast.Tuple | ast.List | ast.Set) and set(names) <= strings(node)


@pytest.mark.parametrize(
    ("idea", "predicate"),
    [
        ("the default connection id", lambda n: isinstance(n, ast.Constant) and n.value == studio.DEFAULT_CONN_ID),
        ("the sample categories", literal_tuple_holding("training", "testing", "validation")),
        ("the upload categories", literal_tuple_holding("training", "testing", "split")),
        ("the model variants", literal_tuple_holding("int8", "float32", "akida")),
        ("a Studio page address", lambda n: isinstance(n, ast.JoinedStr) and any("/studio/" in s for s in strings(n))),
    ],
)
def test_each_studio_name_is_spelled_once(idea: str, predicate) -> None:  # type: ignore[no-untyped-def]
    found = places(predicate)
    home = [p for p in found if p.startswith(f"{HOME.name}:")]
    assert len(home) == 1, f"{idea}: expected exactly one definition in {HOME.name}, found {found}"
    assert found == home, f"{idea} is spelled again outside {HOME.name}: {sorted(set(found) - set(home))}"


def test_the_studio_addresses() -> None:
    assert studio.studio_job_url("https://s", 7, 9) == "https://s/studio/7/jobs/9"
    assert studio.studio_job_url("https://s", 7, 9, tuner=True) == "https://s/studio/7/tuner/9"
    assert studio.studio_page_url("https://s", 7, "acquisition/testing") == "https://s/studio/7/acquisition/testing"


def confirm_delays(node: ast.AST) -> bool:
    from airflow_provider_edgeimpulse.jobs import relay

    if not isinstance(node, ast.Tuple):
        return False
    values = [n.value for n in node.elts if isinstance(n, ast.Constant)]
    return values == list(relay.CONFIRM_DELAYS_S)


@pytest.mark.parametrize(
    ("idea", "predicate"),
    [
        ("the delays that confirm a job's end", confirm_delays),
        ("the cap on remembered log lines", lambda n: isinstance(n, ast.Name) and n.id.endswith("SEEN_CAP")),
        (
            "the batched log record (a flush scheduled with call_soon)",
            lambda n: isinstance(n, ast.Attribute) and n.attr == "call_soon",
        ),
    ],
)
def test_the_socket_waits_share_one_relay_one_confirmation_and_one_batched_log(idea: str, predicate) -> None:  # type: ignore[no-untyped-def]
    found = places(predicate)
    assert found, f"{idea}: not found at all; the check looks for the wrong thing"
    assert {place.split(":")[0] for place in found} == {"jobs/relay.py"}, f"{idea} outside jobs/relay.py: {found}"
