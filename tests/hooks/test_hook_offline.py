"""Hook behaviour that needs no Edge Impulse at all: laziness, argument checks, an unreachable host, helpers."""

from __future__ import annotations

import json
import socket
import time
from email import message_from_bytes
from email.policy import HTTP
from pathlib import Path

import pytest

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks._multipart import MultipartFiles
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.hooks.policy import RetryPolicy
from tests.ports import free_port

TINY_POLICY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, max_total_sleep=1.0)


def _set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "edgeimpulse", **fields}))


def test_init_reads_no_connection_and_opens_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the constructor must not look up the connection or open a socket")

    monkeypatch.setattr(EdgeImpulseHook, "get_connection", classmethod(forbidden))
    monkeypatch.setattr(socket, "create_connection", forbidden)
    hook = EdgeImpulseHook(edgeimpulse_conn_id="does_not_exist", project_id="7", timeout=5)
    assert hook.edgeimpulse_conn_id == "does_not_exist"
    assert "credentials" not in hook.__dict__ and "session" not in hook.__dict__
    assert repr(hook) == "EdgeImpulseHook(edgeimpulse_conn_id='does_not_exist', project_id=7)"


def test_hook_class_attributes() -> None:
    assert EdgeImpulseHook.conn_name_attr == "edgeimpulse_conn_id"
    assert EdgeImpulseHook.default_conn_name == "edgeimpulse_default"
    assert EdgeImpulseHook.conn_type == "edgeimpulse"
    assert EdgeImpulseHook.hook_name == "Edge Impulse"


def test_unreachable_host_is_retried_then_named(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    _set_conn(monkeypatch, "ei_down", host=f"http://127.0.0.1:{port}", password="ei_down_key", extra={"project_id": 3})
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_down", retry_policy=TINY_POLICY)
    started = time.monotonic()
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.get_project_info()
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"could not reach http://127.0.0.1:{port}" in message
    assert "after 3 attempts" in message
    assert "connection refused" in message
    assert "ei_down_key" not in message
    assert info.value.status is None


def test_unreachable_host_start_job_is_still_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing was connected, so repeating a job start cannot start a second job: it is retried too.
    port = free_port()
    _set_conn(monkeypatch, "ei_down2", host=f"http://127.0.0.1:{port}", password="ei_k2", extra={"project_id": 3})
    hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_down2", retry_policy=TINY_POLICY)
    with pytest.raises(EdgeImpulseAPIError, match=r"could not reach .* after 3 attempts"):
        hook.start_retrain()


def test_test_connection_reports_an_unreachable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    _set_conn(monkeypatch, "ei_down3", host=f"http://127.0.0.1:{port}", password="ei_secret_3", extra={"project_id": 3})
    ok, message = EdgeImpulseHook(edgeimpulse_conn_id="ei_down3").test_connection()
    assert not ok
    assert f"127.0.0.1:{port}" in message and "ei_secret_3" not in message


def test_test_connection_reports_a_bad_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_conn(monkeypatch, "ei_bad", extra={"auth_type": "kerberos"})
    ok, message = EdgeImpulseHook(edgeimpulse_conn_id="ei_bad").test_connection()
    assert not ok and "unknown auth_type 'kerberos'" in message


@pytest.mark.parametrize(
    "path", ["retrain", "/jobs/retrain", "jobs/", "jobs/../raw-data", "jobs/train?x=1", "https://evil/jobs/x", ""]
)
def test_start_job_validates_the_path(path: str) -> None:
    hook = EdgeImpulseHook(project_id=1)  # validation comes before any connection lookup
    with pytest.raises(ValueError, match="job path must look like"):
        hook.start_job(path)


def test_upload_validates_before_sending(tmp_path: Path) -> None:
    ok_file = tmp_path / "idle.01.wav"
    ok_file.write_bytes(b"RIFF")
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024 + 1)  # sparse: no disk used
    hook = EdgeImpulseHook(edgeimpulse_conn_id="never_looked_up", project_id=1)
    with pytest.raises(ValueError, match="upload not started") as info:
        hook.upload_files([ok_file, tmp_path / "missing.wav", big], category="validation")
    message = str(info.value)
    assert "unknown category 'validation'" in message
    assert "missing.wav: no such file" in message
    assert "big.bin" in message and "100 MiB" in message
    with pytest.raises(ValueError, match="contradict"):
        hook.upload_files([ok_file], label="x", no_label=True)


def test_batch_edit_labels_refuses_to_relabel_everything_by_accident() -> None:
    with pytest.raises(ValueError, match="allow_all=True"):
        EdgeImpulseHook(project_id=1).batch_edit_labels("noise", "training")


def test_multipart_body_is_exact_and_reiterable(tmp_path: Path) -> None:
    paths = []
    for i, name in enumerate(["a.wav", 'we"ird.json', "déjà.csv"]):
        path = tmp_path / name
        path.write_bytes(bytes([i]) * (1000 + i))
        paths.append(path)
    body = MultipartFiles(paths)
    first = b"".join(body)
    assert len(first) == len(body)
    assert b"".join(body) == first  # a retry sends the same bytes again
    parsed = message_from_bytes(f"Content-Type: {body.content_type}\r\n\r\n".encode() + first, policy=HTTP)
    parts = list(parsed.iter_parts())
    assert [p.get_param("name", header="content-disposition") for p in parts] == ["data"] * 3
    assert [p.get_payload(decode=True) for p in parts] == [bytes([i]) * (1000 + i) for i in range(3)]
    assert parts[1].get_filename() == "we%22ird.json"


def test_multipart_body_refuses_a_file_that_shrank(tmp_path: Path) -> None:
    path = tmp_path / "shrinks.bin"
    path.write_bytes(b"x" * 100)
    body = MultipartFiles([path])
    path.write_bytes(b"x" * 10)
    with pytest.raises(ValueError, match="changed size"):
        b"".join(body)


def test_legacy_ui_field_behaviour_matches_provider_info() -> None:
    from airflow_provider_edgeimpulse.get_provider_info import UI_FIELD_BEHAVIOUR

    behaviour = EdgeImpulseHook.get_ui_field_behaviour()
    assert behaviour["hidden_fields"] == UI_FIELD_BEHAVIOUR["hidden-fields"]
    assert behaviour["relabeling"]["host"] == "Studio URL"
    assert behaviour["relabeling"]["login"] == "Username (JWT only)"
    assert behaviour["relabeling"]["password"] == "API key or password"
    assert set(behaviour["placeholders"]) >= {"host", "password", "project_id", "auth_type"}
