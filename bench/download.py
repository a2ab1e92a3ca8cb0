"""
The hook's streaming download of a 1 GiB deployment, next to curl fetching the same URL into the same folder.

The emulator builds the artefact once (first download) and then serves it from its page-cached file, so every
timed transfer reads the same bytes the same way. Both sides write to a file beside each other and the file is
deleted after each run; the hook also hashes (sha256) as it goes, as it always does. Each round runs both
sides back to back, in alternating order; each speed is the best of ``--rounds`` runs, because on a shared
machine (steal time, page-cache writeback) disturbances only ever slow a run down. RSS growth is the bench
process's high-water mark during the hook's downloads minus its resident set just before them.

Then the same artefact (up to ``--s3-size-mib``) goes to object storage: moto's S3-compatible server in its own
process, through an Airflow ``aws`` connection and s3fs, as a deployment reaches S3 or MinIO. One warm-up
download first (s3fs and botocore load their models once per process, not per download), then the hook's RSS
growth while streaming to the store, beside the local download's of the same run, and the bound it should stay
near (``s3_bound_mb``: one multipart part, S3's smallest, plus one read chunk) whatever the artefact's size.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the S3 server helper the tests use

from _common import API_KEY, PROJECT_ID, Emulator, emit, note, parser, peak_rss_mb, reset_peak_rss, rounded, rss_mb

from airflow_provider_edgeimpulse.hooks.download import DOWNLOAD_CHUNK_BYTES
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook
from airflow_provider_edgeimpulse.jobs.blocking import wait_for_job_blocking
from airflow_provider_edgeimpulse.storage import OBJECT_PART_BYTES
from tests.object_store import s3_server

MIB = 1024 * 1024
FORMAT, ENGINE = "zip", "tflite-eon"


# Used only where curl is missing: a plain reader in its own process, 1 MiB reads straight into the file.
_SOCKET_READER = """
import http.client, sys, urllib.parse
url, dest, key = sys.argv[1:4]
parts = urllib.parse.urlsplit(url)
conn = http.client.HTTPConnection(parts.hostname, parts.port)
conn.request("GET", parts.path + "?" + parts.query, headers={"x-api-key": key})
resp = conn.getresponse()
assert resp.status == 200, resp.status
buf = memoryview(bytearray(1 << 20))
with open(dest, "wb", buffering=0) as out:
    while n := resp.readinto(buf):
        out.write(buf[:n])
"""


def reference_download(url: str, dest: Path) -> float:
    """Seconds curl (or, without curl, a minimal reader process) takes to fetch ``url`` into ``dest``."""
    if shutil.which("curl"):
        command = ["curl", "--silent", "--show-error", "--fail", "-H", f"x-api-key: {API_KEY}", "-o", str(dest), url]
    else:
        command = [sys.executable, "-c", _SOCKET_READER, url, str(dest), API_KEY]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def hook_download(hook: EdgeImpulseHook, dest: Path) -> float:
    started = time.perf_counter()
    hook.download_deployment(dest, FORMAT, ENGINE)
    return time.perf_counter() - started


def s3_downloads(hook: EdgeImpulseHook, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds and RSS growth (MB) of the hook's downloads into the S3-compatible server, after a warm-up."""
    seconds: list[float] = []
    growth: list[float] = []
    with s3_server() as s3:
        os.environ[f"AIRFLOW_CONN_{s3.conn_id.upper()}"] = s3.connection_json()
        bucket = s3.new_bucket()
        url = f"s3://{s3.conn_id}@{bucket}/bench/deployment.zip"
        hook.download_deployment(url, FORMAT, ENGINE)  # the warm-up
        for round_no in range(1, rounds + 1):
            note(f"object storage round {round_no}/{rounds}")
            reset = reset_peak_rss()
            before = rss_mb()
            started = time.perf_counter()
            hook.download_deployment(url, FORMAT, ENGINE)
            seconds.append(time.perf_counter() - started)
            growth.append((peak_rss_mb() if reset else rss_mb()) - before)
    return seconds, growth


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--size-mib", type=int, default=1024)
    args.add_argument("--rounds", type=int, default=5)
    args.add_argument("--s3-size-mib", type=int, default=256, help="the artefact's size for the S3 case")
    opts = args.parse_args()
    size_mib, rounds = (16, 1) if opts.quick else (opts.size_mib, opts.rounds)
    reference = "curl" if shutil.which("curl") else "http.client reader (curl is not installed)"
    note(f"reference: {reference}")
    with Emulator() as emulator, tempfile.TemporaryDirectory(prefix="bench-download-") as folder:
        emulator.use_as_default_connection()
        emulator.configure(job_duration=0.05, deployment_size_bytes=size_mib * MIB)
        hook = EdgeImpulseHook()
        build = hook.start_build_deployment(FORMAT, ENGINE)
        if not wait_for_job_blocking(hook.credentials, hook.project_id, build["job_id"], timeout=60)["success"]:
            raise RuntimeError("the deployment build failed")
        url = f"{emulator.url}/v1/api/{PROJECT_ID}/deployment/download?type={FORMAT}&engine={ENGINE}"
        dest = Path(folder) / "deployment.zip"
        note(f"building the {size_mib} MiB artefact (first download)")
        reference_download(url, dest)
        size = dest.stat().st_size
        dest.unlink()
        # The emulator has just written the artefact: flush it now, not during the timed runs.
        os.sync()

        curl_s: list[float] = []
        hook_s: list[float] = []
        growth: list[float] = []
        for round_no in range(1, rounds + 1):
            note(f"round {round_no}/{rounds}")
            for side in ("curl", "hook") if round_no % 2 else ("hook", "curl"):
                if side == "curl":
                    curl_s.append(reference_download(url, dest))
                else:
                    reset = reset_peak_rss()
                    before = rss_mb()
                    hook_s.append(hook_download(hook, dest))
                    # Without a resettable high-water mark only the RSS after the run can be read (an underestimate).
                    growth.append((peak_rss_mb() if reset else rss_mb()) - before)
                dest.unlink()
        # The same build, smaller where the S3 server (which keeps every part, then copies on the final move) would
        # make the run long; a bounded memory use does not depend on the size.
        s3_mib = min(size_mib, opts.s3_size_mib)
        emulator.configure(deployment_size_bytes=s3_mib * MIB)
        build = hook.start_build_deployment(FORMAT, ENGINE)
        if not wait_for_job_blocking(hook.credentials, hook.project_id, build["job_id"], timeout=60)["success"]:
            raise RuntimeError("the deployment build failed")
        s3_s, s3_growth = s3_downloads(hook, rounds)
        hook.close()

    mib = size / MIB
    ours, theirs = mib / min(hook_s), mib / min(curl_s)
    emit(
        {
            "size_mib": rounded(mib, 1),
            "mib_per_s": rounded(ours),
            "curl_mib_per_s": rounded(theirs),
            "ratio": rounded(ours / theirs, 3),
            "rss_growth_mb": rounded(max(growth), 2),
            "s3_size_mib": s3_mib,
            "s3_mib_per_s": rounded(s3_mib / min(s3_s)),
            "s3_rss_growth_mb": rounded(max(s3_growth), 2),
            # What one transfer to the store may hold: a multipart part (S3's smallest) and a read chunk.
            "s3_bound_mb": rounded((OBJECT_PART_BYTES + DOWNLOAD_CHUNK_BYTES) / MIB, 1),
            "reference": reference,
        }
    )


if __name__ == "__main__":
    main()
