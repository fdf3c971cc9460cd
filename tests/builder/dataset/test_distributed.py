"""``builder synth --dask``: a cluster of worker processes writes the threaded run's store byte for byte, survives a
worker killed mid-run, reaches a cluster by its scheduler address; without ``--dask`` Dask is never imported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import yaml

from builder.dataset import resume
from pianoscribe.errors import UserError
from tests.builder.conftest import tiny_settings
from tests.builder.dataset.test_reliability import tree_bytes
from tests.stores import synthesize_store

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[3]


def write(settings, path):
    return synthesize_store(settings, path, path.parent)


def dask_settings(tiny_files, address: str, n: int = 2048) -> dict:
    settings = tiny_settings(tiny_files, n=n)
    settings["dask"] = {"address": address}
    return settings


@pytest.fixture(scope="module")
def threaded_store(tiny_files, tmp_path_factory) -> Path:
    """The reference: the same settings rendered by threads in this process (16 shards a side at most)."""
    path = tmp_path_factory.mktemp("threaded") / "dataset.zarr"
    write(tiny_settings(tiny_files, n=2048), path)
    return path


@pytest.mark.slow
def test_two_worker_processes_write_the_threaded_store_byte_for_byte(tiny_files, threaded_store, tmp_path):
    said: list[str] = []
    path = tmp_path / "dataset.zarr"
    synthesize_store(dask_settings(tiny_files, "local:2"), path, tmp_path, say=said.append)
    assert any(line.startswith("dask: 2 workers, 4 threads") for line in said), said
    assert tree_bytes(path) == tree_bytes(threaded_store)  # every file: shards, metadata, attributes


@pytest.mark.slow
def test_a_cluster_reached_by_its_scheduler_address_gets_the_banks_shipped(tiny_files, threaded_store, tmp_path):
    """A scheduler address (not local:N) is a cluster elsewhere: the banks travel to each worker once, with the
    plugin, and the worker reads its own copies."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        path = tmp_path / "dataset.zarr"
        said: list[str] = []
        synthesize_store(dask_settings(tiny_files, cluster.scheduler_address), path, tmp_path, say=said.append)
        with Client(cluster) as client:
            copies = client.run(
                lambda dask_worker: sorted(os.listdir(f"{dask_worker.local_directory}/pianoscribe-banks"))
            )
    assert any(line.startswith("dask: 1 workers, 2 threads") for line in said), said
    assert list(copies.values()) == [["00-bright.h5", "01-dull.h5"]]
    assert tree_bytes(path) == tree_bytes(threaded_store)


def worker_processes(parent: psutil.Process) -> list[psutil.Process]:
    """The Dask worker processes a ``builder synth --dask local:N`` started (spawned by its nannies)."""
    return [
        child
        for child in parent.children(recursive=True)
        if "multiprocessing" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())
    ]


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(tiny_files, tmp_path):
    """SIGKILL one of two workers once some shards are recorded: its tasks run again elsewhere and the store is
    still the threaded run's, byte for byte."""
    settings = tiny_settings(tiny_files, n=65536)
    settings["storage"].update({"chunk_rows": 256, "shard_rows": 1024})  # 64 shards
    reference = tmp_path / "reference.zarr"
    write(settings, reference)

    settings["dask"] = {"address": "local:2"}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"synth": settings}))
    out = tmp_path / "dataset.zarr"
    run = subprocess.Popen(
        [str(BIN / "builder"), "synth", "--out", str(out), "--params", str(params)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    progress = resume.partial_path(out) / "_progress"
    deadline = time.monotonic() + 180
    while run.poll() is None and time.monotonic() < deadline and len(list(progress.glob("*.json"))) < 4:
        time.sleep(0.005)
    workers = worker_processes(psutil.Process(run.pid))
    recorded = len(list(progress.glob("*.json")))
    assert run.poll() is None and len(workers) == 2, "the run ended (or never started its workers) before the kill"
    os.kill(workers[0].pid, signal.SIGKILL)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    assert recorded < 64, "every shard was already written when the worker was killed"
    assert not workers[0].is_running()
    assert tree_bytes(out) == tree_bytes(reference)


def test_without_dask_nothing_of_dask_is_imported(tiny_files, tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from tests.builder.conftest import tiny_settings
        from tests.stores import synthesize_store
        paths = {{key: Path(value) for key, value in json.loads(sys.argv[1]).items()}}
        synthesize_store(tiny_settings(paths), Path(sys.argv[2]), Path(sys.argv[2]).parent)
        print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("dask", "distributed"))))
        """
    )
    files = json.dumps({key: str(value) for key, value in tiny_files.items()})
    result = subprocess.run(
        [sys.executable, "-c", script, files, str(tmp_path / "dataset.zarr")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "dataset.zarr" / "zarr.json").is_file()


@pytest.mark.parametrize("address", ["local:0", "local:two", 3])
def test_a_bad_dask_address_is_a_one_line_error(tiny_files, tmp_path, address):
    with pytest.raises(UserError, match="synth.dask.address"):
        write(dask_settings(tiny_files, address), tmp_path / "dataset.zarr")
    assert not (tmp_path / "dataset.zarr").exists()
