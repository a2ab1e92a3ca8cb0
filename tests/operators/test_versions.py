"""Versioning the project: blocking and deferred, the version identified, its figures, the bucket rule, retention."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from airflow_provider_edgeimpulse.operators.versions import EdgeImpulseCreateVersionOperator, identify_version
from tests.operators.fakes import make_context
from tests.operators.helpers import MODES, defer, defer_and_resume, fire, job_starts


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def _run(op: EdgeImpulseCreateVersionOperator, mode: str, context: dict[str, Any] | None = None) -> Any:
    context = context if context is not None else make_context()
    return defer_and_resume(op, context) if mode == "deferred" else op.execute(context)


def _versions() -> list[dict[str, Any]]:
    hook = EdgeImpulseHook()
    try:
        return hook.list_versions()["versions"]
    finally:
        hook.close()


def _make(description: str, mode: str = "blocking", **kwargs: Any) -> Any:
    op = EdgeImpulseCreateVersionOperator(
        task_id="version", description=description, deferrable=mode == "deferred", **kwargs
    )
    return _run(op, mode)


@pytest.mark.parametrize("mode", MODES)
def test_a_version_is_made_and_described(em, mode):
    _make("an earlier one")
    context = make_context()
    op = EdgeImpulseCreateVersionOperator(
        task_id="version",
        description="nightly {{ ds }}",
        run_model_testing_while_versioning=True,
        deferrable=mode == "deferred",
    )
    op.render_template_fields({"ds": "2026-12-04"})
    result = _run(op, mode, context)
    assert context["ti"].xcoms["next_version"] == 2
    (listed,) = [v for v in _versions() if v["version"] == 2]
    assert result["version"] == 2
    assert result["version_id"] == listed["id"]
    assert result["description"] == "nightly 2026-12-04"
    assert result["created"] == listed["created"]
    # The figures Studio keeps with the version: the test accuracy is the model-testing result of the job.
    testing = em.state.project
    from airflow_provider_edgeimpulse.emulator.rest_data import classify_result

    assert result["test_accuracy"] == classify_result(testing)["accuracy"]["accuracyScore"] == listed["testAccuracy"]
    assert result["training_accuracy"] == listed["trainingAccuracy"]
    assert result["public"] is False
    assert result["deleted_versions"] == []
    assert result["studio_url"] == f"{em.url}/studio/{em.project_id}/versions"
    assert context["ti"].xcoms["studio_url"] == result["studio_url"]
    assert result["job_id"] == context["ti"].xcoms["job_id"]


def test_without_model_testing_the_version_has_no_test_accuracy(em):
    result = _make("untested", run_model_testing_while_versioning=False)
    assert result["test_accuracy"] is None
    assert result["training_accuracy"] is not None
    assert em.state.project.run_model_testing_while_versioning is False


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_version_job_fails_the_task_with_its_log(em, mode):
    em.configure(job_outcome="failure")
    context = make_context()
    op = EdgeImpulseCreateVersionOperator(task_id="version", description="x", deferrable=mode == "deferred")
    if mode == "deferred":
        event = fire(defer(op, context)).payload
        with pytest.raises(EdgeImpulseJobFailed, match="could not be copied to the storage bucket"):
            op.execute_complete(context, event)
    else:
        with pytest.raises(EdgeImpulseJobFailed, match="could not be copied to the storage bucket"):
            op.execute(context)
    assert _versions() == []


def test_the_version_is_told_from_one_another_task_made_meanwhile(em):
    versions = [
        {"id": 7, "version": 4, "description": "other", "created": "2026-12-04T10:00:01Z"},
        {"id": 8, "version": 5, "description": "ours", "created": "2026-12-04T10:00:02Z"},
        {"id": 3, "version": 2, "description": "ours", "created": "2026-12-03T10:00:00Z"},
    ]
    assert identify_version(versions, "ours", 4)["id"] == 8
    # A retry that re-attached to the finished job read a later nextVersion: the job's start time decides.
    assert identify_version(versions, "ours", 6, "2026-12-04T10:00:00Z")["id"] == 8
    assert identify_version(versions, "ours", 6, None) is None
    assert identify_version(versions, "missing", 1) is None


def test_a_bucket_is_refused_for_an_api_key_connection_before_any_job(em):
    with pytest.raises(ValueError, match=r"bucket_id: .*only for a JWT connection.*'edgeimpulse_default'"):
        _make("x", bucket_id=3)
    assert job_starts(em) == 0


def test_a_bucket_is_used_with_a_jwt_connection(em, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_EI_JWT", em.connection_json(auth_type="jwt"))
    op = EdgeImpulseCreateVersionOperator(
        task_id="version",
        description="own storage",
        bucket_id="3",
        edgeimpulse_conn_id="ei_jwt",
        project_id=em.project_id,
    )
    result = op.execute(make_context())
    (listed,) = _versions()
    assert (result["version_id"], listed["bucket"]["id"]) == (listed["id"], 3)


@pytest.mark.parametrize("mode", MODES)
def test_keep_last_deletes_older_versions_but_never_a_public_one(em, mode):
    _make("v1")
    _make("v2 public", make_public=True)
    _make("v3")
    _make("v4")
    result = _make("v5", mode, keep_last=2)
    assert result["version"] == 5
    assert result["deleted_versions"] == [3, 1]
    assert sorted(v["version"] for v in _versions()) == [2, 4, 5]
    assert em.requests()["by_route"].get("DELETE /v1/api/{projectId}/versions/{versionId}") == 2


def test_keep_last_never_deletes_the_version_just_made(em):
    _make("public one", make_public=True)
    # Another task made a later version meanwhile: ours is not among the newest one, and is kept anyway.
    em.configure(job_duration=None)
    context = make_context()
    op = EdgeImpulseCreateVersionOperator(task_id="version", description="ours", keep_last=1, deferrable=True)
    trigger = defer(op, context)
    (job,) = [j for j in em.jobs() if j["finished"] is None]
    em.finish_job(job["id"])
    em.configure(job_duration=0.2)
    _make("newer, by someone else")
    result = op.execute_complete(context, fire(trigger).payload)
    assert result["version"] == 2
    assert result["deleted_versions"] == []
    assert sorted(v["version"] for v in _versions()) == [1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep_last": 0}, "keep_last must be at least 1"),
        ({"keep_last": "all"}, "keep_last must be an integer"),
        ({"make_public": "maybe"}, "make_public must be true or false"),
        ({"run_model_testing_while_versioning": "sometimes"}, "run_model_testing_while_versioning must be true"),
        ({"bucket_id": "mine"}, "bucket_id must be an integer"),
        ({"description": 3}, "description must be a string"),
    ],
)
def test_bad_arguments_fail_before_any_job(em, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EdgeImpulseCreateVersionOperator(task_id="version", **{"description": "x", **kwargs}).execute(make_context())
    assert job_starts(em) == 0


def test_a_templated_keep_last_is_checked_once_rendered(em):
    op = EdgeImpulseCreateVersionOperator(task_id="version", description="x", keep_last="{{ params.keep }}")
    op.render_template_fields({"params": {"keep": 0}})
    with pytest.raises(ValueError, match="keep_last must be at least 1"):
        op.execute(make_context())
    assert job_starts(em) == 0
