"""
Upload globs against real files and symbolic links: they keep to their folder, send each real file once, and end.

Every upload goes to the emulator's ingestion service over loopback, so what was sent is what Studio received.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeimpulse.operators._globs import glob_files, split_pattern
from airflow_provider_edgeimpulse.operators.data import EdgeImpulseUploadSamplesOperator
from tests.hang_guard import run_bounded
from tests.operators.fakes import make_context

# A guard so that a walk that never ends fails the test instead of hanging the run (not a speed goal).
HANG_GUARD_S = 60.0


@pytest.fixture
def em(edgeimpulse_emulator: Any) -> Any:
    return edgeimpulse_emulator


def sample(path: Path, value: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"payload": {"values": [[value, 1, 2]]}}))
    return path


def uploaded_names(em: Any, result: dict[str, Any]) -> list[str]:
    """The names Studio stored for the samples of an upload."""
    samples = em.state.project.samples
    return sorted(samples[sample_id].filename for sample_id in result["sample_ids"])


def upload(paths: Any, **kwargs: Any) -> dict[str, Any]:
    return EdgeImpulseUploadSamplesOperator(task_id="upload", paths=paths, **kwargs).execute(make_context())


def bounded(call: Callable[[], Any], seconds: float = HANG_GUARD_S) -> Any:
    result, error = run_bounded(call, seconds, "expanding the pattern (it does not end)")
    if error is not None:
        raise error
    return result


def test_a_link_to_a_file_outside_the_folder_is_not_uploaded(em, tmp_path, capsys):
    data = tmp_path / "data"
    sample(data / "idle.0.json")
    sample(data / "idle.1.json", 2)
    secret = sample(tmp_path / "elsewhere" / "settings.json", 99)
    (data / "wave.settings.json").symlink_to(secret)

    result = upload(str(data / "*.json"))
    assert result["uploaded"] == 2
    assert uploaded_names(em, result) == ["idle.0", "idle.1"]
    captured = capsys.readouterr()
    assert "wave.settings.json" in captured.out + captured.err, "the left-out link is named in a warning"


def test_a_linked_folder_outside_is_not_walked_by_double_star(em, tmp_path):
    data = tmp_path / "data"
    sample(data / "a" / "idle.0.json")
    sample(tmp_path / "elsewhere" / "keys" / "wave.0.json", 7)
    (data / "a" / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)

    result = upload(str(data / "**" / "*.json"))
    assert result["uploaded"] == 1
    assert uploaded_names(em, result) == ["idle.0"]


def test_a_pattern_that_matches_only_links_out_is_an_error_before_any_request(em, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "idle.0.json").symlink_to(sample(tmp_path / "elsewhere" / "idle.0.json"))
    with pytest.raises(ValueError, match=r"matches no file inside '.*data' \(1 symbolic link out of it left out\)"):
        upload(str(data / "*.json"))
    assert em.requests()["total"] == 0


def test_each_real_file_is_uploaded_once_whatever_links_lead_to_it(em, tmp_path):
    data = tmp_path / "data"
    real = sample(data / "real" / "idle.0.json")
    sample(data / "real" / "idle.1.json", 2)
    (data / "alias").symlink_to(data / "real", target_is_directory=True)  # a second way into the same folder
    (data / "wave.0.json").symlink_to(real)  # a file link inside the folder
    os.link(real, data / "knock.0.json")  # a hard link: the same file again

    result = upload([str(data / "**" / "*.json"), str(real)])
    assert result["uploaded"] == 2
    assert len(uploaded_names(em, result)) == 2


def test_double_star_over_link_loops_ends(em, tmp_path):
    data = tmp_path / "data"
    sample(data / "idle.0.json")
    sample(data / "a" / "b" / "idle.1.json", 2)
    # Every folder links back up twice: glob.glob's walk over these never ends in practice.
    for folder in (data, data / "a", data / "a" / "b"):
        (folder / "up").symlink_to(data, target_is_directory=True)
        (folder / "again").symlink_to(folder, target_is_directory=True)

    result = bounded(lambda: upload(str(data / "**" / "*.json")))
    assert result["uploaded"] == 2
    assert uploaded_names(em, result) == ["idle.0", "idle.1"]


def test_a_file_name_that_is_not_utf8_is_a_clear_error_before_any_request(em, tmp_path):
    sample(tmp_path / "idle.0.json")
    raw = os.fsencode(tmp_path) + b"/caf\xe9.0.json"
    with open(raw, "w") as handle:
        handle.write(json.dumps({"payload": {"values": [[1, 2, 3]]}}))
    with pytest.raises(ValueError, match="the file name is not valid UTF-8") as info:
        upload(str(tmp_path / "*.json"))
    assert repr(os.fsdecode(raw)) in str(info.value)
    assert em.requests()["total"] == 0


# -- the walker matches what glob.glob matches where no link is involved ------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        "*.json",
        "**/*.json",
        "**",
        "a/**/*.wav",
        "a/*/x.wav",
        "*/b/*",
        "a/**/b/*.wav",
        "**/.*",
        ".hidden/*",
        "[ab]/*.wav",
        "a/b?/*.wav",
        "**/**/*.json",
    ],
)
def test_the_walker_matches_like_glob_without_links(tmp_path, pattern):
    for name in [
        "top.json",
        ".dot.json",
        "a/x.wav",
        "a/b/y.wav",
        "a/b/c/z.wav",
        "a/b1/w.wav",
        "a/.hidden/h.wav",
        "b/x.wav",
        "b/n.json",
        ".hidden/in.json",
    ]:
        sample(tmp_path / name)
    full = str(tmp_path / pattern)
    expected = sorted({p for p in glob.glob(full, recursive=True) if os.path.isfile(p)})  # glob repeats some
    assert glob_files(full).files == expected


@pytest.mark.parametrize(
    ("pattern", "base", "rest"),
    [
        ("/data/in/**/*.wav", "/data/in", ["**", "*.wav"]),
        ("/*.wav", "/", ["*.wav"]),
        ("rel/*/x", "rel", ["*", "x"]),
        ("*.wav", ".", ["*.wav"]),
        ("d/**/**/*.wav", "d", ["**", "*.wav"]),
    ],
)
def test_the_base_folder_is_the_part_before_the_first_wildcard(pattern, base, rest):
    assert split_pattern(pattern) == (base, rest)
