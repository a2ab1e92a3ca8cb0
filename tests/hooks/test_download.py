"""
Downloads are checked before they count: over real loopback HTTP, from the emulator or a server that misbehaves.

An HTTP 200 that is a sign-in page, a ``success: false`` answer or a body cut short must fail and leave nothing
behind; a gzip-encoded answer must work; a server that stalls mid-way must not hold the task past its deadline;
a file name the server chooses must not replace another file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.exceptions import EdgeImpulseAPIError
from airflow_provider_edgeimpulse.hooks.download import MAX_FILENAME_BYTES, server_filename
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from tests.hang_guard import run_bounded
from tests.hooks.conftest import FAST_POLICY, set_connection
from tests.hooks.scripted_http import Script, drip, response_head, scripted_server, send

DOWNLOAD = "/deployment/download"
# A call that should end in about a second; past this it is hanging (a guard, not a speed goal).
HANG_GUARD_S = 30.0


def a_zip(entries: int = 3, size: int = 20_000) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for n in range(entries):
            archive.writestr(f"model/part-{n}.bin", bytes([n]) * size)
    return buffer.getvalue()


def bounded(call: Callable[[], Any], seconds: float = HANG_GUARD_S) -> tuple[Any, BaseException | None]:
    return run_bounded(call, seconds, "the download")


@pytest.fixture
def scripted_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Script], EdgeImpulseHook]]:
    """A hook whose Studio is a scripted loopback server."""
    with ExitStack() as stack:

        def make(script: Script, **extra: Any) -> EdgeImpulseHook:
            server = stack.enter_context(scripted_server(script))
            conn = {"conn_type": "edgeimpulse", "host": server.url, "password": "ei_scripted_key"}
            set_connection(monkeypatch, "ei_scripted", {**conn, "extra": {"project_id": 1, **extra}})
            hook = EdgeImpulseHook(edgeimpulse_conn_id="ei_scripted", retry_policy=FAST_POLICY)
            stack.callback(hook.close)
            return hook

        yield make


def built(hook: EdgeImpulseHook, ei: Any) -> None:
    started = hook.start_build_deployment("zip", "tflite-eon", model_type="int8")
    ei.finish_job(started["job_id"], success=True)


def logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> str:
    """What the hook logged, through either logging or Airflow's structlog output."""
    captured = capsys.readouterr()
    return "\n".join([caplog.text, captured.out, captured.err])


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- answers that are not the artefact ------------------------------------------------------------------------


@pytest.mark.off_spec("a sign-in page instead of the artefact")
def test_an_html_sign_in_page_is_not_saved(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    built(hook, ei)
    page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in</body></html>"
    ei.fault(status=200, body=page, path=DOWNLOAD)
    with pytest.raises(EdgeImpulseAPIError, match="HTML page") as info:
        hook.download_deployment(tmp_path / "firmware.zip", "zip", "tflite-eon")
    assert "Sign in" in str(info.value)
    assert leftovers(tmp_path) == []


@pytest.mark.off_spec("a JSON error where the artefact should be")
def test_a_success_false_answer_is_the_api_error_it_is(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    built(hook, ei)
    ei.fault(status=200, body=json.dumps({"success": False, "error": "Build has expired"}), path=DOWNLOAD)
    with pytest.raises(EdgeImpulseAPIError, match="failed: Build has expired") as info:
        hook.download_deployment(tmp_path, "zip", "tflite-eon")
    assert (info.value.error, info.value.status) == ("Build has expired", 200)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/zip", json.dumps({"success": False, "error": "No such build"}), "failed: No such build"),
        ("application/octet-stream", "<html><body>Access denied</body></html>", "HTML page"),
        ("application/json", json.dumps({"success": True, "url": "https://elsewhere"}), "instead of the artefact"),
        ("text/plain", "Service temporarily unavailable", "instead of the artefact"),
    ],
)
@pytest.mark.off_spec("documents where the artefact should be")
def test_a_document_is_refused_whatever_its_content_type(
    hook: EdgeImpulseHook, ei: Any, tmp_path: Path, content_type: str, body: str, message: str
) -> None:
    built(hook, ei)
    ei.fault(status=200, body=body, path=DOWNLOAD, content_type=content_type)
    with pytest.raises(EdgeImpulseAPIError, match=message):
        hook.download_deployment(tmp_path / "firmware.zip", "zip", "tflite-eon")
    assert leftovers(tmp_path) == []


@pytest.mark.off_spec("a sign-in page instead of the artefact")
def test_an_echoed_key_in_a_refused_page_is_scrubbed(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    built(hook, ei)
    ei.fault(status=200, body=f"<html>your key {ei.api_key} is not allowed here</html>", path=DOWNLOAD)
    with pytest.raises(EdgeImpulseAPIError) as info:
        hook.download_deployment(tmp_path, "zip", "tflite-eon")
    assert ei.api_key not in str(info.value) and "***" in str(info.value)


# -- bodies cut short, encoded, or stalled --------------------------------------------------------------------


def test_a_zip_cut_short_without_a_length_is_not_saved(scripted_hook: Any, tmp_path: Path) -> None:
    data = a_zip()
    head = response_head(Content_Type="application/zip", Connection="close")
    hook = scripted_hook(send(head + data[: len(data) * 2 // 3]))
    with pytest.raises(EdgeImpulseAPIError, match="not a readable zip"):
        hook.download_deployment(tmp_path / "model.zip", "zip", "tflite-eon")
    assert leftovers(tmp_path) == []


def test_a_whole_zip_without_a_length_is_saved(scripted_hook: Any, tmp_path: Path) -> None:
    data = a_zip()
    hook = scripted_hook(send(response_head(Content_Type="application/zip", Connection="close") + data))
    result = hook.download_deployment(tmp_path / "model.zip", "zip", "tflite-eon")
    assert Path(result["path"]).read_bytes() == data
    assert result["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_zip_cut_short_in_chunked_framing_is_not_saved(scripted_hook: Any, tmp_path: Path) -> None:
    data = a_zip()
    part = data[:30_000]
    body = f"{len(part):x}\r\n".encode() + part + b"\r\n"  # no final 0-size chunk: the server went away
    hook = scripted_hook(send(response_head(Content_Type="application/zip", Transfer_Encoding="chunked") + body))
    with pytest.raises(EdgeImpulseAPIError, match="broke off after"):
        hook.download_deployment(tmp_path / "model.zip", "zip", "tflite-eon")
    assert leftovers(tmp_path) == []


def test_a_binary_without_a_length_is_saved_with_a_warning(
    scripted_hook: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytes(range(256)) * 100
    head = response_head(
        Content_Type="application/octet-stream",
        Content_Disposition='attachment; filename="firmware.bin"',
        Connection="close",
    )
    hook = scripted_hook(send(head + data))
    result = hook.download_deployment(tmp_path, "runner-linux-aarch64", "tflite")
    assert Path(result["path"]) == tmp_path / "firmware.bin"
    assert Path(result["path"]).read_bytes() == data
    assert "cannot be checked" in logged(caplog, capsys)


def test_an_empty_body_is_not_an_artefact(scripted_hook: Any, tmp_path: Path) -> None:
    hook = scripted_hook(send(response_head(Content_Type="application/octet-stream", Content_Length="0")))
    with pytest.raises(EdgeImpulseAPIError, match="empty body"):
        hook.download_deployment(tmp_path, "runner-linux-aarch64", "tflite")
    assert leftovers(tmp_path) == []


def test_a_gzip_encoded_answer_is_saved_decoded(scripted_hook: Any, tmp_path: Path) -> None:
    data = a_zip(size=50_000)
    packed = gzip.compress(data)
    assert len(packed) < len(data) // 10  # so a size check on the wrong side would surely differ
    head = response_head(
        Content_Type="application/zip", Content_Encoding="gzip", Content_Length=str(len(packed)), Connection="close"
    )
    hook = scripted_hook(send(head + packed))
    result = hook.download_deployment(tmp_path / "model.zip", "zip", "tflite-eon")
    assert Path(result["path"]).read_bytes() == data
    assert (result["size"], result["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_gzip_encoded_answer_cut_short_is_not_saved(scripted_hook: Any, tmp_path: Path) -> None:
    packed = gzip.compress(a_zip(size=50_000))
    head = response_head(
        Content_Type="application/zip", Content_Encoding="gzip", Content_Length=str(len(packed)), Connection="close"
    )
    hook = scripted_hook(send(head + packed[: len(packed) // 2]))
    with pytest.raises(EdgeImpulseAPIError, match="broke off after"):
        hook.download_deployment(tmp_path / "model.zip", "zip", "tflite-eon")
    assert leftovers(tmp_path) == []


def chunked(data: bytes, *, end: bool = True) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n" + (b"0\r\n\r\n" if end else b"")


@pytest.mark.parametrize("framing", ["until close", "chunked"])
def test_a_gzip_transfer_coding_is_undone(scripted_hook: Any, tmp_path: Path, framing: str) -> None:
    # Not a zip, so only the bytes themselves can tell the artefact from its gzip coding.
    data = bytes(range(256)) * 400
    packed = gzip.compress(data)
    if framing == "chunked":
        head = response_head(Content_Type="application/octet-stream", Transfer_Encoding="gzip, chunked")
        body = chunked(packed)
    else:
        head = response_head(Content_Type="application/octet-stream", Transfer_Encoding="gzip", Connection="close")
        body = packed
    hook = scripted_hook(send(head + body))
    result = hook.download_deployment(tmp_path / "firmware.bin", "runner-linux-aarch64", "tflite")
    assert Path(result["path"]).read_bytes() == data
    assert (result["size"], result["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def test_a_gzip_transfer_coding_cut_short_is_not_saved(scripted_hook: Any, tmp_path: Path) -> None:
    packed = gzip.compress(bytes(range(256)) * 400)
    head = response_head(Content_Type="application/octet-stream", Transfer_Encoding="gzip", Connection="close")
    hook = scripted_hook(send(head + packed[: len(packed) // 2]))
    with pytest.raises(EdgeImpulseAPIError, match="gzip transfer coding did not end"):
        hook.download_deployment(tmp_path / "firmware.bin", "runner-linux-aarch64", "tflite")
    assert leftovers(tmp_path) == []


def test_a_corrupt_gzip_transfer_coding_is_an_error_and_not_saved(scripted_hook: Any, tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(bytes(range(256)) * 400))
    packed[12:40] = b"\xff" * 28  # the deflate stream's first block, past the gzip header
    head = response_head(Content_Type="application/octet-stream", Transfer_Encoding="gzip", Connection="close")
    hook = scripted_hook(send(head + bytes(packed)))
    with pytest.raises(EdgeImpulseAPIError, match="gzip transfer coding is corrupt"):
        hook.download_deployment(tmp_path / "firmware.bin", "runner-linux-aarch64", "tflite")
    assert leftovers(tmp_path) == []


def test_a_transfer_coding_that_cannot_be_undone_is_refused(scripted_hook: Any, tmp_path: Path) -> None:
    head = response_head(Content_Type="application/octet-stream", Transfer_Encoding="br, chunked")
    hook = scripted_hook(send(head + chunked(b"\x0b\x02\x80hello\x03")))
    with pytest.raises(EdgeImpulseAPIError, match="transfer coding 'br'"):
        hook.download_deployment(tmp_path / "firmware.bin", "runner-linux-aarch64", "tflite")
    assert leftovers(tmp_path) == []


# -- downloads larger than the connection allows ---------------------------------------------------------------

SMALL_LIMIT_MIB = 0.05  # 52,428 bytes
SMALL_LIMIT_BYTES = int(SMALL_LIMIT_MIB * 1024 * 1024)


def test_a_download_over_the_limit_is_cut_off_and_nothing_is_saved(scripted_hook: Any, tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000  # 256,000 bytes, no length announced
    head = response_head(Content_Type="application/octet-stream", Connection="close")
    hook = scripted_hook(send(head + data), max_download_mib=SMALL_LIMIT_MIB)
    with pytest.raises(EdgeImpulseAPIError, match=f"larger than the limit of {SMALL_LIMIT_BYTES} bytes") as info:
        hook.download_deployment(tmp_path, "runner-linux-aarch64", "tflite")
    assert "max_download_mib" in str(info.value)
    assert leftovers(tmp_path) == []


def test_a_small_gzip_answer_that_unpacks_past_the_limit_is_cut_off(scripted_hook: Any, tmp_path: Path) -> None:
    packed = gzip.compress(bytes(20 * SMALL_LIMIT_BYTES))
    assert len(packed) < SMALL_LIMIT_BYTES // 10  # what is sent is far below the limit; what it unpacks to is not
    head = response_head(
        Content_Type="application/zip", Content_Encoding="gzip", Content_Length=str(len(packed)), Connection="close"
    )
    hook = scripted_hook(send(head + packed), max_download_mib=SMALL_LIMIT_MIB)
    with pytest.raises(EdgeImpulseAPIError, match="larger than the limit"):
        hook.download_deployment(tmp_path / "model.zip", "zip", "tflite-eon")
    assert leftovers(tmp_path) == []


def test_a_gzip_transfer_coding_that_unpacks_past_the_limit_is_cut_off(scripted_hook: Any, tmp_path: Path) -> None:
    packed = gzip.compress(bytes(20 * SMALL_LIMIT_BYTES))
    head = response_head(Content_Type="application/octet-stream", Transfer_Encoding="gzip", Connection="close")
    hook = scripted_hook(send(head + packed), max_download_mib=SMALL_LIMIT_MIB)
    with pytest.raises(EdgeImpulseAPIError, match="larger than the limit"):
        hook.download_deployment(tmp_path / "firmware.bin", "runner-linux-aarch64", "tflite")
    assert leftovers(tmp_path) == []


def test_an_announced_length_over_the_limit_is_refused_before_the_body_is_read(
    scripted_hook: Any, tmp_path: Path
) -> None:
    # The body never comes: only the announced length can end this download before its deadline.
    head = response_head(Content_Type="application/zip", Content_Length=str(10 * SMALL_LIMIT_BYTES))
    hook = scripted_hook(drip(head, every_s=0.1), max_download_mib=SMALL_LIMIT_MIB)
    result, error = bounded(lambda: hook.download_deployment(tmp_path, "zip", "tflite-eon", download_timeout=20))
    assert isinstance(error, EdgeImpulseAPIError), (result, error)
    assert f"it announces {10 * SMALL_LIMIT_BYTES} bytes" in str(error)
    assert leftovers(tmp_path) == []


def test_a_stalling_server_is_cut_off_at_the_download_deadline(scripted_hook: Any, tmp_path: Path) -> None:
    # One byte every 0.1 s never trips the per-read timeout; only the overall deadline ends it.
    head = response_head(Content_Type="application/zip", Content_Length=str(10 * 1024 * 1024))
    hook = scripted_hook(drip(head, every_s=0.1))
    result, error = bounded(lambda: hook.download_deployment(tmp_path, "zip", "tflite-eon", download_timeout=1))
    assert isinstance(error, EdgeImpulseAPIError), (result, error)
    assert "did not complete within its deadline of 1 s (download_timeout" in str(error)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "soon", True])
def test_a_bad_download_timeout_is_refused_before_any_request(
    hook: EdgeImpulseHook, ei: Any, tmp_path: Path, value: Any
) -> None:
    before = ei.requests()["total"]
    with pytest.raises(ValueError, match="download_timeout must be a positive, finite number of seconds"):
        hook.download_deployment(tmp_path, "zip", "tflite-eon", download_timeout=value)
    assert ei.requests()["total"] == before


# -- the server's file name -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="model.zip"', "model.zip"),
        ("attachment; filename*=UTF-8''d%C3%A9j%C3%A0.zip", "déjà.zip"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="..\\\\evil.zip"', "evil.zip"),
        ("attachment", None),
        (None, None),
    ],
)
def test_content_disposition_filename(header: str | None, expected: str | None) -> None:
    assert server_filename(header) == (expected, None)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("attachment; filename*=UTF-8''model%0A.zip", "control characters"),
        ("attachment; filename*=UTF-8''mo%00del.zip", "control characters"),
        ("attachment; filename*=UTF-8''model%E2%80%AEpiz.exe", "control characters"),  # right-to-left override
        ('attachment; filename=".bashrc"', "hidden file"),
        ('attachment; filename="../.."', "names no file"),
        (f'attachment; filename="{"m" * (MAX_FILENAME_BYTES + 1)}.zip"', f"over {MAX_FILENAME_BYTES} bytes"),
    ],
)
def test_an_unsafe_server_file_name_is_refused(header: str, reason: str) -> None:
    name, why = server_filename(header)
    assert name is None and why is not None and reason in why
    assert "\n" not in why and "\0" not in why


@pytest.mark.parametrize(
    "disposition",
    [
        "attachment; filename*=UTF-8''evil%0Aname.zip",
        "attachment; filename*=UTF-8''evil%00name.zip",
        f'attachment; filename="{"x" * 300}.zip"',
    ],
)
def test_an_unsafe_server_file_name_gives_a_safe_name(
    scripted_hook: Any,
    tmp_path: Path,
    disposition: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = a_zip()
    head = response_head(Content_Type="application/zip", Content_Length=str(len(data)), Content_Disposition=disposition)
    hook = scripted_hook(send(head + data))
    result = hook.download_deployment(tmp_path, "zip", "tflite-eon")
    assert leftovers(tmp_path) == ["1-zip-tflite-eon.zip"]
    assert result["filename"] is None and Path(result["path"]).read_bytes() == data
    assert "not using the file name the server gave" in logged(caplog, capsys)


def test_the_server_name_never_replaces_another_file(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    built(hook, ei)
    first = hook.download_deployment(tmp_path, "zip", "tflite-eon")
    name = first["filename"]
    assert name and Path(first["path"]) == tmp_path / name

    # Another file of that name: it stays as it is, the download gets the next free name.
    Path(first["path"]).write_bytes(b"somebody else's notes")
    second = hook.download_deployment(tmp_path, "zip", "tflite-eon")
    stem = name.removesuffix(".zip")
    assert Path(second["path"]) == tmp_path / f"{stem}-1.zip"
    assert (tmp_path / name).read_bytes() == b"somebody else's notes"
    assert second["sha256"] == first["sha256"]

    # The same artefact again: the identical file is the result, no third copy.
    third = hook.download_deployment(tmp_path, "zip", "tflite-eon")
    assert third["path"] == second["path"]
    assert leftovers(tmp_path) == sorted([name, f"{stem}-1.zip"])


def test_a_named_destination_is_replaced(hook: EdgeImpulseHook, ei: Any, tmp_path: Path) -> None:
    built(hook, ei)
    (tmp_path / "model.zip").write_bytes(b"last week's build")
    result = hook.download_deployment(tmp_path / "model.zip", "zip", "tflite-eon")
    assert result["path"] == str(tmp_path / "model.zip")
    assert zipfile.ZipFile(result["path"]).testzip() is None
    assert leftovers(tmp_path) == ["model.zip"]
