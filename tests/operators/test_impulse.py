"""Create the impulse from a dict, JSON text or a JSON file; anything that is not an impulse is refused unsent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.operators.impulse import EdgeImpulseCreateImpulseOperator
from airflow_provider_edgeimpulse.operators.training import EdgeImpulseTrainOperator
from tests.operators.fakes import make_context

GESTURES = Path(__file__).resolve().parents[2] / "dags" / "impulses" / "gestures.json"


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def definition(**changes: Any) -> dict[str, Any]:
    return {**json.loads(GESTURES.read_text()), **changes}


def create(value: Any, context: dict[str, Any] | None = None) -> int:
    return EdgeImpulseCreateImpulseOperator(task_id="create", definition=value).execute(context or make_context())


def test_a_dict_definition_replaces_the_impulse_and_links_to_it(em):
    context = make_context()
    impulse_id = create(definition(name="From a dict"), context)
    impulse = em.state.project.impulse
    assert (impulse["id"], impulse["name"]) == (impulse_id, "From a dict")
    assert context["ti"].xcoms["studio_url"] == f"{em.url}/studio/{em.project_id}/create-impulse"
    # The new impulse is the one the next tasks see.
    result = EdgeImpulseTrainOperator(task_id="train", learn_block="Classifier").execute(make_context())
    assert result["success"] is True


def test_json_text_and_a_file_path_are_both_read(em, tmp_path):
    first = create(json.dumps(definition(name="As text")))
    path = tmp_path / "impulse.json"
    path.write_text(json.dumps(definition(name="From a file")))
    second = create(str(path))
    assert second == first + 1
    assert em.state.project.impulse["name"] == "From a file"


def test_templated_definition_renders_inside_the_dict(em):
    op = EdgeImpulseCreateImpulseOperator(task_id="create", definition=definition(name="{{ params.name }}"))
    op.render_template_fields({"params": {"name": "Nightly"}})
    op.execute(make_context())
    assert em.state.project.impulse["name"] == "Nightly"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"inputBlocks": [], "dspBlocks": []}, "learnBlocks is missing or not a list"),
        ({"inputBlocks": [{"type": "time-series"}], "dspBlocks": [], "learnBlocks": []}, "learnBlocks is empty"),
        ({"inputBlocks": [], "dspBlocks": [], "learnBlocks": [{"type": "keras"}]}, "inputBlocks is empty"),
        (
            {"inputBlocks": [{"type": "image"}], "dspBlocks": [{"id": 3}], "learnBlocks": [{"type": "keras"}]},
            "every entry of dspBlocks must be an object with a 'type'",
        ),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "neither a JSON object nor an existing JSON file"),
        ("/no/such/impulse.json", "neither a JSON object nor an existing JSON file"),
        (42, "must be a JSON object"),
    ],
)
def test_what_is_not_an_impulse_is_refused_before_any_request(em, value, message):
    with pytest.raises(ValueError, match=message):
        create(value)
    assert em.requests()["total"] == 0


def test_a_file_that_is_not_json_is_named_in_the_error(em, tmp_path):
    path = tmp_path / "impulse.json"
    path.write_text("inputBlocks: []")
    with pytest.raises(ValueError, match=f"definition file '{path}' is not valid JSON"):
        create(path)
    assert em.requests()["total"] == 0
