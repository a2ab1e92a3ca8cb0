"""Bulk relabelling (at once or by a job) and uploads of local files, checked before anything is sent."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_edgeimpulse.operators.data import (
    EdgeImpulseBatchEditLabelsOperator,
    EdgeImpulseUploadFailed,
    EdgeImpulseUploadSamplesOperator,
)
from airflow_provider_edgeimpulse.operators.job import EdgeImpulseJobFailed
from tests.operators.fakes import DictStateStore, make_context
from tests.operators.helpers import MODES, defer, fire, run_dag, states, xcom

GESTURES = Path(__file__).resolve().parents[2] / "dags" / "impulses" / "gestures.json"


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def labels_of(em: Any, category: str = "training") -> dict[int, str]:
    return {s.id: s.label for s in em.state.project.samples.values() if s.category == category}


def write_samples(directory: Path, label: str, count: int) -> list[Path]:
    paths = []
    for n in range(count):
        path = directory / f"{label}.{n}.json"
        path.write_text(json.dumps({"payload": {"values": [[n, 1, 2]]}}))
        paths.append(path)
    return paths


def relabel(**kwargs: Any) -> EdgeImpulseBatchEditLabelsOperator:
    kwargs.setdefault("category", "training")
    kwargs.setdefault("label", "waving")
    return EdgeImpulseBatchEditLabelsOperator(task_id="relabel", **kwargs)


@pytest.mark.usefixtures("airflow_db")
@pytest.mark.parametrize("mode", MODES)
def test_upload_relabel_by_job_and_create_impulse_in_a_dag_run(em, mode, tmp_path):
    em.configure(batch_sync_limit=1)  # three samples to relabel: Studio hands that to a job
    write_samples(tmp_path, "clap", 3)
    conf = {"glob": str(tmp_path / "*.json"), "label": "clap", "source": "mic-7", "impulse": str(GESTURES)}
    dag_run = run_dag(f"ei_ops_data_{mode}", conf)
    assert str(dag_run.state) == "success", states(dag_run)

    uploaded = xcom(dag_run, "upload")
    assert (uploaded["uploaded"], uploaded["failed"], uploaded["category"]) == (3, [], "training")
    samples = em.state.project.samples
    assert {samples[i].metadata.get("source") for i in uploaded["sample_ids"]} == {"mic-7"}
    assert xcom(dag_run, "upload", "studio_url") == f"{em.url}/studio/{em.project_id}/acquisition/training"

    relabelled = xcom(dag_run, "relabel")
    (job,) = em.jobs()
    assert relabelled == {
        "affected": 3,
        "job_id": job["id"],
        "label": "applause",
        "category": "training",
        "status": "success",
    }
    assert xcom(dag_run, "relabel", "job_id") == job["id"]
    assert {samples[i].label for i in uploaded["sample_ids"]} == {"applause"}

    impulse_id = xcom(dag_run, "create_impulse")
    assert impulse_id == em.state.project.impulse["id"]
    assert em.state.project.impulse["name"] == "Gestures (curated)"
    assert xcom(dag_run, "create_impulse", "studio_url").endswith("/create-impulse")


def test_a_small_relabel_is_done_at_once_without_a_job(em):
    context = make_context()
    result = relabel(labels="wave", exclude_ids="[12]").execute(context)
    assert result == {"affected": 3, "job_id": None, "label": "waving", "category": "training", "status": "success"}
    assert em.jobs() == []
    assert sorted(i for i, label in labels_of(em).items() if label == "waving") == [9, 10, 11]
    assert context["ti"].xcoms["studio_url"].endswith("/acquisition/training")


def test_rendered_id_lists_select_the_samples(em):
    op = relabel(ids="{{ params.ids }}", exclude_ids="{{ params.skip }}", category="{{ params.category }}")
    op.render_template_fields({"params": {"ids": [13, 14, 15], "skip": [14], "category": "testing"}})
    assert (op.ids, op.exclude_ids, op.category) == ("[13, 14, 15]", "[14]", "testing")
    result = op.execute(make_context())
    assert result["affected"] == 2
    assert [i for i, label in labels_of(em, "testing").items() if label == "waving"] == [13, 15]


def test_relabel_the_whole_category_only_when_allowed(em):
    with pytest.raises(ValueError, match="allow_all=True"):
        relabel(category="testing").execute(make_context())
    result = relabel(category="testing", allow_all="true").execute(make_context())
    assert result["affected"] == 6
    assert set(labels_of(em, "testing").values()) == {"waving"}


def test_not_waiting_returns_the_started_job(em):
    em.configure(batch_sync_limit=1, job_duration=None)
    result = relabel(labels=["wave"], wait_for_completion=False).execute(make_context())
    (job,) = em.jobs()
    assert result == {
        "affected": 4,
        "job_id": job["id"],
        "label": "waving",
        "category": "training",
        "status": "started",
    }


def test_a_retry_re_attaches_to_the_relabelling_job(em):
    em.configure(batch_sync_limit=1, job_duration=None)
    store = DictStateStore()
    # First try: the job starts and the task defers; the wait fails (the trigger's error event), so the try fails.
    first = relabel(labels=["wave"], deferrable=True)
    with pytest.raises(TaskDeferred):
        first.execute(make_context(store=store))
    (job,) = em.jobs()
    with pytest.raises(EdgeImpulseJobFailed, match="lost the socket"):
        first.execute_complete(make_context(store=store), {"status": "error", "message": "lost the socket"})
    results: dict[str, Any] = {}

    def retry() -> None:
        results["value"] = relabel(labels=["wave"]).execute(make_context(store=store))

    thread = threading.Thread(target=retry)
    thread.start()
    time.sleep(0.5)
    em.finish_job(job["id"], True)
    thread.join(15)
    assert results["value"]["job_id"] == job["id"]
    assert results["value"]["status"] == "success"
    assert len(em.jobs()) == 1, "no second relabelling job"
    assert list(labels_of(em).values()).count("waving") == 4


def test_a_failing_relabel_job_fails_with_its_log_tail(em):
    em.configure(batch_sync_limit=1, job_outcome="failure")
    context = make_context()
    op = relabel(labels=["wave"], deferrable=True)
    event = fire(defer(op, context))
    with pytest.raises(EdgeImpulseJobFailed, match="the sample store rejected the update"):
        op.execute_complete(context, event.payload)
    assert "waving" not in labels_of(em).values()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"category": "anomaly", "labels": ["wave"]}, "category must be one of"),
        ({"label": "", "labels": ["wave"]}, "label must be a non-empty string"),
        ({"ids": "[1, 'x']"}, "ids must be a list of integers"),
        ({"labels": [""]}, "labels must be a list of non-empty strings"),
        ({"labels": ["wave"], "allow_all": "perhaps"}, "allow_all must be true or false"),
    ],
)
def test_bad_relabel_arguments_fail_before_any_request(em, kwargs, message):
    with pytest.raises(ValueError, match=message):
        relabel(**kwargs).execute(make_context())
    assert em.requests()["total"] == 0


def upload(**kwargs: Any) -> EdgeImpulseUploadSamplesOperator:
    return EdgeImpulseUploadSamplesOperator(task_id="upload", **kwargs)


def test_upload_labels_and_metadata_every_file(em, tmp_path):
    paths = write_samples(tmp_path, "knock", 2)
    result = upload(
        paths=[str(p) for p in paths], category="testing", label="tap", metadata={"mic": 2, "ok": True}
    ).execute(make_context())
    assert result["uploaded"] == 2
    for sample_id in result["sample_ids"]:
        sample = em.state.project.samples[sample_id]
        assert (sample.category, sample.label, sample.metadata) == ("testing", "tap", {"mic": "2", "ok": "true"})


def test_globs_recurse_and_each_file_is_sent_once(em, tmp_path):
    (tmp_path / "a").mkdir()
    write_samples(tmp_path / "a", "idle", 2)
    write_samples(tmp_path, "idle", 1)
    result = upload(paths=[str(tmp_path / "**" / "*.json"), str(tmp_path / "idle.0.json")]).execute(make_context())
    assert result["uploaded"] == 3
    assert result["requests"] == 1


def test_some_files_refused_fail_the_task_after_pushing_the_result(em, tmp_path):
    small = write_samples(tmp_path, "idle", 1)[0]
    big = tmp_path / "wave.big.json"
    big.write_text(json.dumps({"payload": {"values": [[1, 2, 3]] * 400}}))
    em.configure(ingestion_max_file_bytes=2000)
    context = make_context()
    with pytest.raises(
        EdgeImpulseUploadFailed, match=r"Uploaded 1 of 2 files; 1 failed: .*wave\.big\.json: File is too"
    ):
        upload(paths=[str(small), str(big)]).execute(context)
    pushed = context["ti"].xcoms["upload_result"]
    assert (pushed["uploaded"], [f["file"] for f in pushed["failed"]]) == (1, [str(big)])
    lenient = upload(paths=[str(small), str(big)], fail_on_error="false").execute(make_context())
    assert (lenient["uploaded"], len(lenient["failed"])) == (1, 1)


def test_nothing_uploaded_always_fails(em, tmp_path):
    paths = write_samples(tmp_path, "idle", 2)
    em.configure(ingestion_max_file_bytes=1)
    with pytest.raises(EdgeImpulseUploadFailed, match="Uploaded 0 of 2"):
        upload(paths=[str(p) for p in paths], fail_on_error=False).execute(make_context())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"paths": ["{tmp}/gone.json", "{tmp}/*.wav"]}, "gone.json': no such file; .*\\*.wav' matches no file"),
        ({"paths": "{tmp}"}, "is a directory"),
        ({"paths": []}, "at least one file"),
        ({"paths": "{tmp}/idle.0.json", "category": "holdout"}, "category must be one of"),
        ({"paths": "{tmp}/idle.0.json", "label": "x", "no_label": True}, "contradict"),
        ({"paths": "{tmp}/idle.0.json", "metadata": {"nested": {"a": 1}}}, "metadata values must be strings"),
        ({"paths": "{tmp}/idle.0.json", "metadata": "not json"}, "metadata must be a dict"),
    ],
)
def test_bad_upload_arguments_fail_before_any_request(em, tmp_path, kwargs, message):
    write_samples(tmp_path, "idle", 1)
    paths = kwargs.pop("paths")
    paths = [p.format(tmp=tmp_path) for p in paths] if isinstance(paths, list) else paths.format(tmp=tmp_path)
    with pytest.raises(ValueError, match=message):
        upload(paths=paths, **kwargs).execute(make_context())
    assert em.requests()["total"] == 0


def test_upload_templated_fields_render(em, tmp_path):
    write_samples(tmp_path, "idle", 1)
    op = upload(
        paths="{{ params.dir }}/*.json",
        category="{{ params.category }}",
        label="{{ params.label }}",
        metadata={"batch": "{{ params.batch }}"},
        fail_on_error="{{ params.strict }}",
    )
    op.render_template_fields(
        {"params": {"dir": str(tmp_path), "category": "split", "label": "rest", "batch": 9, "strict": True}}
    )
    assert (op.category, op.sample_label, op.metadata, op.fail_on_error) == ("split", "rest", {"batch": "9"}, "True")
    result = op.execute(make_context())
    assert result["uploaded"] == 1


def test_count_with_ids_is_made_from_the_listing_not_raw_data_count(em):
    # GET raw-data/count takes no ids (Studio ignores them): counting there would give the whole category.
    result = relabel(ids=[13, 15, 99], exclude_ids=[15], category="testing").execute(make_context())
    assert result["affected"] == 1
    assert [i for i, label in labels_of(em, "testing").items() if label == "waving"] == [13]
