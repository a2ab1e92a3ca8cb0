"""
Uploading 2000 small samples through EdgeImpulseHook.upload_files (what the upload operator calls), next to one
request per file in sequence, as a hand-written script following Edge Impulse's ingestion examples does.

The baseline is given a keep-alive ``requests.Session`` (the examples call ``requests.post`` afresh for each
file, which is slower still), so the speedup shown is a conservative one. The emulator is reset between sides,
so both start from the same empty project.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import requests
from _common import API_KEY, Emulator, emit, note, parser, rounded

from airflow_provider_edgeimpulse.emulator.sample_files import acquisition_sample
from airflow_provider_edgeimpulse.hooks.edgeimpulse import EdgeImpulseHook

LABELS = ("idle", "wave", "snake")


def make_samples(folder: Path, count: int) -> list[Path]:
    """Small files in Edge Impulse's data acquisition format (about 1 KiB each), labelled by file name."""
    paths: list[Path] = []
    for index in range(count):
        label = LABELS[index % len(LABELS)]
        body = acquisition_sample([[index % 7, (index * 3) % 11, row] for row in range(40)], device_type="BENCH")
        path = folder / f"{label}.{index:05d}.json"
        path.write_text(json.dumps(body))
        paths.append(path)
    return paths


def upload_one_by_one(url: str, paths: list[Path]) -> int:
    ok = 0
    with requests.Session() as session:
        for path in paths:
            with path.open("rb") as handle:
                resp = session.post(
                    f"{url}/api/training/files",
                    headers={"x-api-key": API_KEY},
                    files=(("data", (path.name, handle, "application/json")),),
                    timeout=60,
                )
            resp.raise_for_status()
            ok += sum(1 for f in resp.json()["files"] if f.get("success"))
    return ok


def main() -> None:
    args = parser(__doc__ or "")
    args.add_argument("--files", type=int, default=2000)
    opts = args.parse_args()
    count = 50 if opts.quick else opts.files
    with Emulator() as emulator, tempfile.TemporaryDirectory(prefix="bench-upload-") as folder:
        emulator.use_as_default_connection()
        paths = make_samples(Path(folder), count)
        note(f"{count} files through EdgeImpulseHook.upload_files")
        hook = EdgeImpulseHook()
        started = time.perf_counter()
        result = hook.upload_files(paths, category="training")
        ours_s = time.perf_counter() - started
        hook.close()
        if result["succeeded"] != count:
            raise RuntimeError(f"the hook uploaded {result['succeeded']} of {count} files")
        emulator.reset()
        note(f"{count} files, one request each")
        started = time.perf_counter()
        uploaded = upload_one_by_one(emulator.url, paths)
        theirs_s = time.perf_counter() - started
        if uploaded != count:
            raise RuntimeError(f"the baseline uploaded {uploaded} of {count} files")
    emit(
        {
            "files": count,
            "requests": result["requests"],
            "files_per_s": rounded(count / ours_s),
            "baseline_files_per_s": rounded(count / theirs_s),
            "speedup": rounded(theirs_s / ours_s, 1),
        }
    )


if __name__ == "__main__":
    main()
