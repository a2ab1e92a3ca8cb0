"""The example DAGs run unchanged against the emulator through dag.test(), deferrable and not."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.emulator.sample_files import write_wave_samples
from tests.airflow_compat import asset_event_extras, register_assets, xcom, xcoms

DAGS = Path(__file__).resolve().parent.parent / "dags"
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))  # Airflow puts the DAG folder on sys.path; the examples import their sibling

pytestmark = pytest.mark.usefixtures("airflow_db")

GATE = "retrain_test_gate_build.quality_gate"
DEVICE = "cortex-m4f-80mhz"  # the pipeline's default target_device


@pytest.fixture(params=[True, False], ids=["deferrable", "blocking"])
def deferrable(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    # The waiting mode is read when the DAG file is parsed, as in a deployment.
    monkeypatch.setenv("AIRFLOW_VAR_EDGEIMPULSE_DEFERRABLE", str(request.param).lower())
    return bool(request.param)


def load(dag_id: str) -> Any:
    module = importlib.reload(importlib.import_module(dag_id)) if dag_id in sys.modules else None
    return (module or importlib.import_module(dag_id)).dag


def run(dag_id: str, conf: dict[str, Any] | None = None) -> Any:
    return load(dag_id).test(run_conf=conf or {})


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_nightly_retrain_uploads_retrains_tests_gates_versions_and_builds(edgeimpulse_emulator, deferrable, tmp_path):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.3)
    samples = tmp_path / "samples"
    samples.mkdir()
    for n in range(3):
        (samples / f"wave.{n}.json").write_text('{"payload": {"values": [[1, 2, 3]]}}')
    out = tmp_path / "out"
    announced_to = load("edgeimpulse_nightly_retrain").get_task("retrain_test_gate_build.build").outlets[0].uri
    register_assets(announced_to)
    dag_run = run("edgeimpulse_nightly_retrain", {"samples_dir": str(samples), "output_dir": str(out)})
    assert str(dag_run.state) == "success", states(dag_run)
    uploaded = xcom(dag_run, "upload_samples")
    assert len(uploaded["sample_ids"]) == 3
    testing = xcom(dag_run, "retrain_test_gate_build.test")
    assert 0 < testing["accuracy"] <= 1
    verdict = xcom(dag_run, GATE)
    assert verdict["passed"] is True
    # The first version of the project: nothing to regress from yet, so accuracy and the device budget count.
    assert [(c["name"], c["limit"], c["passed"]) for c in verdict["checks"]] == [
        ("accuracy", 0.6, True),
        (f"latency_ms[{DEVICE}/int8/eon]", 100.0, True),
        (f"ram_bytes[{DEVICE}/int8/eon]", 128 * 1024.0, True),
        (f"rom_bytes[{DEVICE}/int8/eon]", 512 * 1024.0, True),
    ]
    assert verdict["checks"][0]["figure"] == testing["accuracy"]
    version = xcom(dag_run, "retrain_test_gate_build.version")
    assert version["version"] == 1
    assert version["description"] == f"edgeimpulse_nightly_retrain {dag_run.run_id}: passed the model gate"
    assert version["test_accuracy"] is not None, "the version records the accuracy the next run compares with"
    assert [v.version for v in em.state.project.versions.values()] == [1]
    build = xcom(dag_run, "retrain_test_gate_build.build")
    assert build["project_version"] == 1
    artifact = Path(build["path"])
    assert artifact.is_file()
    assert artifact.stat().st_size == build["size"]
    assert zipfile.is_zipfile(artifact)
    assert str(artifact).startswith(str(out))
    assert xcom(dag_run, "retrain_test_gate_build.retrain", "studio_url").startswith(em.url)
    assert em.api_key not in json.dumps(xcoms(dag_run), default=str), "no secret in any XCom"
    assert announced_to == "edgeimpulse://studio.edgeimpulse.com/project/1/deployment/zip"
    announced = asset_event_extras(announced_to)[-1]
    assert (announced["sha256"], announced["size"], announced["path"], announced["project_version"]) == (
        build["sha256"],
        build["size"],
        build["path"],
        1,
    )


def test_nightly_retrain_compares_with_the_last_version_and_stops_a_regression(
    edgeimpulse_emulator, tmp_path, capsys, caplog
):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.2)
    first = run("edgeimpulse_nightly_retrain", {"output_dir": str(tmp_path / "first")})
    assert str(first.state) == "success", states(first)
    assert xcom(first, GATE)["baseline"] is None, "no version to compare with yet"

    # The next night: new samples, the same kind of model. It holds against version 1 and becomes version 2.
    samples = tmp_path / "samples"
    write_wave_samples(samples, 3, tag="night-2", device_type="AIRFLOW_TEST")
    second = run("edgeimpulse_nightly_retrain", {"output_dir": str(tmp_path / "second"), "samples_dir": str(samples)})
    assert str(second.state) == "success", states(second)
    held = xcom(second, GATE)
    assert held["baseline"]["version"] == 1
    assert [c["name"] for c in held["checks"] if c["name"].startswith("regression")] == ["regression[accuracy]"]
    good = xcom(second, "retrain_test_gate_build.version")
    assert good["version"] == 2
    assert xcom(second, "retrain_test_gate_build.build")["project_version"] == 2

    # Then a retrain that misclassifies every second sample: above accuracy_threshold, far below version 2.
    em.next_model(miss_every=2)
    with caplog.at_level(logging.INFO):
        dag_run = run("edgeimpulse_nightly_retrain", {"output_dir": str(tmp_path / "third"), "accuracy_threshold": 0})
    verdict = check_stopped_at_the_gate(dag_run, em, [1, 2], 2, tmp_path / "third")
    assert verdict["failed"] == ["regression[accuracy]"]
    regression = verdict["checks"][-1]
    # Version 2 recorded the seeded model's 5 of 6 (the test set kept); the default max_accuracy_drop is 0.05.
    assert verdict["baseline"] == {
        "version_id": good["version_id"],
        "version": 2,
        "accuracy": pytest.approx(5 / 6, abs=1e-4),
    }
    assert regression["limit"] == pytest.approx(5 / 6 - 0.05, abs=1e-4)
    assert regression["figure"] < regression["limit"]
    log = caplog.text + capsys.readouterr().out
    assert "Model gate failed: regression[accuracy]" in log
    assert f"restore the last good version (version 2, id {good['version_id']}) from Studio's Versions page " in log
    assert f"{em.url}/studio/1/versions" in log


def test_nightly_retrain_stops_a_model_over_the_device_budget(edgeimpulse_emulator, tmp_path, capsys, caplog):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.2)
    em.next_model(size_factor=30)  # as accurate as before, 30 times the RAM and flash
    with caplog.at_level(logging.INFO):
        dag_run = run("edgeimpulse_nightly_retrain", {"output_dir": str(tmp_path)})
    verdict = check_stopped_at_the_gate(dag_run, em, [], 0, tmp_path)
    assert verdict["failed"] == [f"ram_bytes[{DEVICE}/int8/eon]", f"rom_bytes[{DEVICE}/int8/eon]"]
    assert {c["name"]: c["figure"] for c in verdict["checks"]}[f"ram_bytes[{DEVICE}/int8/eon]"] == 4812 * 30
    log = caplog.text + capsys.readouterr().out
    assert f"Model gate failed: ram_bytes[{DEVICE}/int8/eon], rom_bytes[{DEVICE}/int8/eon]" in log
    assert f"to roll back, restore the last good version from Studio's Versions page {em.url}/studio/1/versions" in log


def builds(em: Any) -> int:
    return sum(str(j["key"]).startswith("build-ondevice-model") for j in em.jobs())


def check_stopped_at_the_gate(
    dag_run: Any, em: Any, versions_before: list[int], builds_before: int, out: Path
) -> dict[str, Any]:
    """The run failed at the gate, on its first try: no version made, nothing built; the gate's verdict."""
    assert str(dag_run.state) == "failed", states(dag_run)
    task_states = states(dag_run)
    assert task_states[GATE].endswith("failed")
    (gate,) = [ti for ti in dag_run.get_task_instances() if ti.task_id == GATE]
    assert gate.try_number == 1, "a missed limit is not retried (the gate task has retries for Studio hiccups)"
    assert dag_run.get_dag().get_task(GATE).retries > 0
    assert task_states["retrain_test_gate_build.version"].endswith("upstream_failed")
    assert task_states["retrain_test_gate_build.build"].endswith("upstream_failed")
    assert sorted(v.version for v in em.state.project.versions.values()) == versions_before
    assert builds(em) == builds_before, "no deployment was built"
    assert not any(out.rglob("*.zip")), "nothing is built from a model that failed the gate"
    verdict = xcom(dag_run, GATE, "model_gate")
    assert verdict["passed"] is False
    return dict(verdict)


def test_firmware_release_checks_and_releases_the_announced_build(edgeimpulse_emulator, tmp_path):
    edgeimpulse_emulator.configure(job_duration=0.2)
    nightly = run("edgeimpulse_nightly_retrain", {"samples_dir": "", "output_dir": str(tmp_path)})
    build = xcom(nightly, "retrain_test_gate_build.build")
    announced = {**build, "deployment_version": build["deploymentVersion"]}

    dag_run = run("edgeimpulse_firmware_release", {"build": announced})
    assert str(dag_run.state) == "success", states(dag_run)
    assert xcom(dag_run, "release") == {
        "project_version": 1,  # the version the nightly run made of the model it built
        "deployment_version": build["deploymentVersion"],
        "sha256": build["sha256"],
        "path": build["path"],
    }

    Path(build["path"]).write_bytes(b"PK\x05\x06" + bytes(18))  # replaced after it was announced
    dag_run = run("edgeimpulse_firmware_release", {"build": announced})
    assert str(dag_run.state) == "failed"
    assert states(dag_run)["verify"].endswith("failed")
    assert states(dag_run)["release"].endswith("upstream_failed")


def test_firmware_release_takes_the_newest_build_of_the_events_that_triggered_it():
    from datetime import datetime, timezone
    from types import SimpleNamespace

    module = importlib.import_module("edgeimpulse_firmware_release")
    announced_build = module.dag.get_task("announced_build").python_callable

    def event(day: int, sha: str) -> Any:
        extra = {"path": "/fw.zip", "sha256": sha, "size": 3, "deployment_version": day}
        return SimpleNamespace(timestamp=datetime(2026, 1, day, tzinfo=timezone.utc), extra=extra)

    events = {module.deployment: [event(2, "b"), event(3, "c"), event(1, "a")]}
    assert announced_build(**{module.TRIGGERING_EVENTS: events})["sha256"] == "c"
    with pytest.raises(ValueError, match="names no path, sha256, size"):
        announced_build(params={"build": {}})


def test_nightly_retrain_without_samples_skips_only_the_upload(edgeimpulse_emulator, tmp_path):
    edgeimpulse_emulator.configure(job_duration=0.2)
    dag_run = run("edgeimpulse_nightly_retrain", {"samples_dir": "", "output_dir": str(tmp_path)})
    assert str(dag_run.state) == "success", states(dag_run)
    assert states(dag_run)["upload_samples"].endswith("skipped")
    assert states(dag_run)["retrain_test_gate_build.build"].endswith("success")


def test_nightly_retrain_stops_at_the_gate_below_the_threshold(edgeimpulse_emulator, tmp_path):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.2)
    dag_run = run("edgeimpulse_nightly_retrain", {"accuracy_threshold": 0.999, "output_dir": str(tmp_path)})
    verdict = check_stopped_at_the_gate(dag_run, em, [], 0, tmp_path)
    assert verdict["failed"] == ["accuracy"]


def test_eon_tuner_adopts_the_best_trial_retrains_and_builds(edgeimpulse_emulator, deferrable, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_EDGEIMPULSE_TUNER_POKE_INTERVAL", "0.5")
    em = edgeimpulse_emulator
    em.configure(job_duration=0.5)
    dag_run = run("edgeimpulse_eon_tuner", {"output_dir": str(tmp_path), "max_trials": 3})
    assert str(dag_run.state) == "success", states(dag_run)
    summary = xcom(dag_run, "wait_for_tuner")
    adopted = xcom(dag_run, "adopt_best_trial")
    assert adopted["trial_id"]
    assert adopted["trial_id"] == summary["best_trial"]["trial_id"]
    assert Path(xcom(dag_run, "build_deployment")["path"]).is_file()


def test_data_curation_relabels_creates_the_impulse_and_generates_features(edgeimpulse_emulator, deferrable):
    em = edgeimpulse_emulator
    em.configure(job_duration=0.2)
    dag_run = run("edgeimpulse_data_curation")
    assert str(dag_run.state) == "success", states(dag_run)
    labels = {s.label for s in em.state.project.samples.values() if s.category == "training"}
    assert "up-down" in labels
    assert "updown" not in labels
    assert xcom(dag_run, "create_impulse") is not None
    assert any("feature" in str(j["category"]).lower() for j in em.jobs()), em.jobs()
