"""OpenLineage: samples -> project -> version -> deployment artefact, as the upload, version and build report it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage", reason="the OpenLineage provider is not installed")

from airflow_provider_edgeimpulse.operators._lineage import file_dataset, studio_namespace
from airflow_provider_edgeimpulse.operators.data import EdgeImpulseUploadSamplesOperator
from airflow_provider_edgeimpulse.operators.deployment import EdgeImpulseBuildDeploymentOperator
from airflow_provider_edgeimpulse.operators.versions import EdgeImpulseCreateVersionOperator
from tests.operators.fakes import make_context
from tests.operators.helpers import defer_and_resume


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    edgeimpulse_emulator.configure(job_duration=0.2)
    return edgeimpulse_emulator


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_the_chain_joins_from_samples_to_the_artefact(em, tmp_path: Path) -> None:
    from airflow.providers.openlineage.extractors import OperatorLineage

    studio = f"edgeimpulse://{em.url.split('://', 1)[1]}"
    project = (studio, f"project/{em.project_id}")
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        for n in range(2):
            (tmp_path / sub / f"wave.{n}.json").write_text(f'{{"payload": {{"values": [[{n}, 1, 2]]}}}}')

    context = make_context()
    upload = EdgeImpulseUploadSamplesOperator(task_id="upload", paths=str(tmp_path / "*" / "*.json"), label="wave")
    upload.execute(context)
    lineage = upload.get_openlineage_facets_on_complete(context["ti"])
    assert isinstance(lineage, OperatorLineage)
    assert _names(lineage.inputs) == [("file", str(tmp_path / "a")), ("file", str(tmp_path / "b"))]
    assert _names(lineage.outputs) == [project]

    context = make_context()
    version_op = EdgeImpulseCreateVersionOperator(task_id="version", description="lineage", deferrable=True)
    made = defer_and_resume(version_op, context)
    lineage = version_op.get_openlineage_facets_on_complete(context["ti"])
    assert _names(lineage.inputs) == [project]
    assert _names(lineage.outputs) == [(studio, f"project/{em.project_id}/version/{made['version']}")]

    context = make_context()
    build = EdgeImpulseBuildDeploymentOperator(
        task_id="build", deployment_format="zip", output_path=str(tmp_path / "out" / "lib.zip")
    )
    built = build.execute(context)
    lineage = build.get_openlineage_facets_on_complete(context["ti"])
    assert _names(lineage.inputs) == [project]
    assert _names(lineage.outputs) == [("file", built["path"])]

    # Told which version it builds, the build reads from that version: samples -> project -> version -> artefact.
    context = make_context()
    build = EdgeImpulseBuildDeploymentOperator(
        task_id="build",
        deployment_format="zip",
        output_path=str(tmp_path / "out" / "lib.zip"),
        project_version=made["version"],
    )
    build.execute(context)
    lineage = build.get_openlineage_facets_on_complete(context["ti"])
    assert _names(lineage.inputs) == [(studio, f"project/{em.project_id}/version/{made['version']}")]


def test_a_fresh_operator_reads_the_result_from_xcom(em) -> None:
    """The OpenLineage listener may ask an operator object that did not run the task: the XCom answers."""
    context = make_context()
    ti = context["ti"]
    ti.xcoms["return_value"] = {"project_id": 5, "version": 3}
    lineage = EdgeImpulseCreateVersionOperator(task_id="version", description="x").get_openlineage_facets_on_complete(
        ti
    )
    assert _names(lineage.outputs) == [(studio_namespace(em.url), "project/5/version/3")]
    ti.xcoms["return_value"] = None
    empty = EdgeImpulseBuildDeploymentOperator(
        task_id="build", deployment_format="zip", output_path="/tmp/x.zip"
    ).get_openlineage_facets_on_complete(ti)
    assert (empty.inputs, empty.outputs) == ([], [])


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("s3://aws_conn@firmware/nightly/lib.zip", ("s3://firmware", "nightly/lib.zip")),
        ("s3://user:secret@firmware/lib.zip", ("s3://firmware", "lib.zip")),
        ("file:///data/lib.zip", ("file", "/data/lib.zip")),
        ("/data/out/lib.zip", ("file", "/data/out/lib.zip")),
    ],
)
def test_files_and_objects_are_named_without_credentials(location: str, expected: tuple[str, str]) -> None:
    assert file_dataset(location) == expected


def test_the_studio_namespace_is_its_host() -> None:
    assert studio_namespace("https://studio.edgeimpulse.com") == "edgeimpulse://studio.edgeimpulse.com"
    assert studio_namespace("http://user:pw@127.0.0.1:4810") == "edgeimpulse://127.0.0.1:4810"


def test_the_providers_extractor_picks_the_facets_up(em) -> None:
    """The OpenLineage provider's own extractor finds the method and reads the datasets (its contract, not ours)."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    context = make_context()
    op = EdgeImpulseCreateVersionOperator(task_id="version", description="extracted")
    made = op.execute(context)
    extractor = ExtractorManager()._get_extractor(op)
    assert extractor is not None
    lineage = extractor.extract_on_complete(context["ti"])
    assert _names(lineage.outputs) == [(studio_namespace(em.url), f"project/{em.project_id}/version/{made['version']}")]
