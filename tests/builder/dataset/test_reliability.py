"""A damaged, interrupted or contested store: refused, verified, resumed, locked; a user's folder never lost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from builder.cli import app
from builder.dataset import resume, store
from builder.dataset.verify import verify_store
from pianoscribe.errors import UserError
from tests.builder.conftest import tiny_settings
from tests.stores import synthesize_store

BIN = Path(sys.executable).parent


def write(settings, path):
    return synthesize_store(settings, path, path.parent)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of a folder by relative path: two stores are the same bytes when these are equal."""
    return {str(file.relative_to(folder)): file.read_bytes() for file in sorted(folder.rglob("*")) if file.is_file()}


@pytest.fixture
def fresh(tiny_files, tmp_path):
    """A store of 6 shards per side written into a test's own folder (free to damage)."""
    settings = tiny_settings(tiny_files, n=1024)
    path = tmp_path / "dataset.zarr"
    write(settings, path)
    return path, settings


def shard_file(path: Path, side: str, name: str, index: int) -> Path:
    return path / side / name / "c" / str(index) / "0"


def test_a_missing_shard_is_an_error_wherever_the_store_is_opened(fresh):
    path, _ = fresh
    shard_file(path, "train", "key_energy", 2).unlink()
    with pytest.raises(UserError, match=r"train/key_energy: shard 2 of \d+ is missing \(rows 256\.\.383\)"):
        store.open_store(path)
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 1 and "shard 2" in result.output and "Traceback" not in result.output


def test_verify_reads_every_shard_and_names_what_is_wrong(fresh):
    path, _ = fresh
    clean = CliRunner().invoke(app, ["verify", str(path)])
    assert clean.exit_code == 0 and "no problems" in clean.output, clean.output
    garbage = shard_file(path, "train", "fft_magnitude", 1)
    garbage.write_bytes(b"\x00garbage" * 100)
    truncated = shard_file(path, "test", "key_active", 0)
    truncated.write_bytes(truncated.read_bytes()[:-40])
    result = verify_store(path)
    assert not result.ok
    assert any(
        "train/fft_magnitude shard 1" in problem and "cannot be decoded" in problem for problem in result.problems
    )
    assert any("test/key_active shard 0" in problem for problem in result.problems)
    damaged = CliRunner().invoke(app, ["verify", str(path)])
    assert damaged.exit_code == 1 and "problem:" in damaged.output and "Traceback" not in damaged.output


def test_verify_finds_a_shard_whose_bytes_changed_but_still_decode(fresh, tiny_files, tmp_path):
    path, settings = fresh
    other = tmp_path / "other.zarr"
    write({**settings, "seed": settings["seed"] + 1}, other)  # the same layout, other values
    shutil.copy(shard_file(other, "train", "key_energy", 3), shard_file(path, "train", "key_energy", 3))
    result = verify_store(path)
    assert any("train/key_energy shard 3: sha256 differs" in problem for problem in result.problems), result.problems


def test_synth_refuses_to_replace_a_folder_it_did_not_write(tiny_files, tmp_path):
    folder = tmp_path / "photos"
    (folder / "2019").mkdir(parents=True)
    (folder / "2019" / "beach.jpg").write_bytes(b"\xff\xd8 a picture")
    with pytest.raises(UserError, match="photos: exists and is a folder this project did not write"):
        write(tiny_settings(tiny_files, n=256), folder)
    assert (folder / "2019" / "beach.jpg").read_bytes() == b"\xff\xd8 a picture"


def test_synth_replaces_its_own_store(fresh, tiny_files):
    path, settings = fresh
    write({**settings, "seed": 5}, path)
    assert store.attributes(store.open_store(path))["params"]["seed"] == 5
    assert not list(path.parent.glob(".dataset.zarr.*.tmp")) and not resume.partial_path(path).exists()


def test_a_second_writer_to_the_same_output_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "dataset.zarr"
    second = pytest.raises(UserError, match=rf"dataset.zarr: builder synth \(process {os.getpid()}")
    with resume.exclusive_writer(out), second, resume.exclusive_writer(out):
        pass
    with resume.exclusive_writer(out):  # released: the next run may write
        pass


def synth_command(workdir: Path, params: Path) -> list[str]:
    return [str(BIN / "builder"), "synth", "--out", str(workdir / "dataset.zarr"), "--params", str(params)]


@pytest.mark.slow
def test_a_synth_killed_mid_run_resumes_to_the_same_bytes(tiny_files, tmp_path):
    """SIGKILL after a few shards; the rerun keeps them (read back, checked) and the store equals an
    uninterrupted run's, byte for byte."""
    settings = tiny_settings(tiny_files, n=16384)
    settings["storage"].update({"chunk_rows": 256, "shard_rows": 1024})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"synth": settings}))
    reference = tmp_path / "reference"
    reference.mkdir()
    subprocess.run(synth_command(reference, params), cwd=reference, check=True, capture_output=True)

    workdir = tmp_path / "killed"
    workdir.mkdir()
    progress = resume.partial_path(workdir / "dataset.zarr") / "_progress"
    first = subprocess.Popen(
        synth_command(workdir, params), cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline and len(list(progress.glob("*.json"))) < 3:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert len(list(progress.glob("*.json"))) >= 3, "the run ended before it could be killed mid-way"

    second = subprocess.run(synth_command(workdir, params), cwd=workdir, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "resuming" in second.stderr
    assert tree_bytes(workdir / "dataset.zarr") == tree_bytes(reference / "dataset.zarr")
    assert not resume.partial_path(workdir / "dataset.zarr").exists()


def test_temporaries_of_killed_older_runs_are_cleaned_up(fresh, tiny_files):
    path, settings = fresh
    leftover = path.parent / ".dataset.zarr.k3j5x9.zarr.tmp"  # what a killed run of an older version left
    shutil.copytree(path, leftover)
    users_file = path.parent / ".dataset.zarr.notes.tmp"  # not a store: never touched
    users_file.write_text("mine")
    write(settings, path)
    assert not leftover.exists() and users_file.read_text() == "mine"


@pytest.mark.slow
def test_a_second_synth_to_the_same_output_refuses_while_the_first_runs(tiny_files, tmp_path):
    settings = tiny_settings(tiny_files, n=65536)
    settings["storage"].update({"chunk_rows": 256, "shard_rows": 1024})
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"synth": settings}))
    lock = tmp_path / ".dataset.zarr.lock"
    first = subprocess.Popen(
        synth_command(tmp_path, params), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
        time.sleep(0.01)
    second = subprocess.run(synth_command(tmp_path, params), cwd=tmp_path, capture_output=True, text=True)
    first.wait()
    assert first.returncode == 0
    assert second.returncode == 1, second.stderr
    assert f"builder synth (process {first.pid}" in second.stderr and "is writing it" in second.stderr


def test_a_full_disk_is_one_line_and_keeps_what_was_written(tiny_files, small_disk):
    settings = tiny_settings(tiny_files, n=32768)
    settings["storage"].update({"chunk_rows": 256, "shard_rows": 1024})
    disk = small_disk("1m")
    params = disk.parent / "params.yaml"
    params.write_text(yaml.safe_dump({"synth": settings}))
    result = subprocess.run(synth_command(disk, params), cwd=disk.parent, capture_output=True, text=True)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0] and "Traceback" not in result.stderr
    assert "run the same command again to resume" in " ".join(result.stderr.split())
