"""The pipeline on object storage: a real S3-compatible server (moto's, started here on 127.0.0.1 and stopped after),
``builder synth --out s3://...`` (threaded, and again on two Dask workers: the same objects), then ``builder
inspect``/``verify`` and one ``trainer fit`` epoch reading it, each command in its own process as a user runs it,
credentials and endpoint the usual AWS way or as storage options."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.trainer.conftest import tiny_synth_settings, write_tiny_inputs

BIN = Path(sys.executable).parent
BUCKET = "pianoscribe"
STORE = f"s3://{BUCKET}/runs/dataset.zarr"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port, with one empty bucket; its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import s3fs

    s3fs.S3FileSystem(key="test", secret="test", endpoint_url=endpoint).mkdir(BUCKET)
    yield endpoint
    server.stop()


def aws_environment(endpoint: str | None) -> dict[str, str]:
    """Credentials for the test server only (no file of the machine's is read); the endpoint if given."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("AWS_") and key != "TF_CPP_MIN_LOG_LEVEL"
    }
    environment.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        TF_CPP_MIN_LOG_LEVEL="3",
        COLUMNS="200",
    )
    if endpoint is not None:
        environment["AWS_ENDPOINT_URL"] = endpoint
    return environment


def run(command: list[str], cwd: Path, environment: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def stored_objects(bucket, url: str) -> dict[str, bytes]:
    root = url.removeprefix("s3://")
    return {key.removeprefix(root): bucket.cat_file(key) for key in sorted(bucket.find(root))}


@pytest.mark.slow
def test_synth_inspect_verify_and_fit_on_s3(s3_endpoint, tmp_path):
    import s3fs

    inputs = write_tiny_inputs(tmp_path / "inputs")
    synth_settings = tiny_synth_settings(inputs, n=4096)
    fit_settings = {"epochs": 1, "batch_size": 64, "steps_per_epoch": 4, "val_steps": 2, "stats_rows": 1024}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"synth": synth_settings, "fit": fit_settings}))
    with_endpoint = aws_environment(s3_endpoint)

    synth = run([str(BIN / "builder"), "synth", "--out", STORE], tmp_path, with_endpoint)
    assert f"wrote {STORE}: 4,096 examples" in synth
    objects = s3fs.S3FileSystem(key="test", secret="test", endpoint_url=s3_endpoint).find(f"{BUCKET}/runs")
    assert f"{BUCKET}/runs/dataset.zarr/train/fft_magnitude/c/0/0" in objects
    assert not [key for key in objects if "_progress" in key]  # sealed: the shard records are gone
    assert not (tmp_path / "data" / ".dataset.zarr.partial").exists()

    # the endpoint as a storage option instead of AWS_ENDPOINT_URL
    inspect = run(
        [str(BIN / "builder"), "inspect", STORE, "--storage-option", f"endpoint_url={s3_endpoint}"],
        tmp_path,
        aws_environment(None),
    )
    assert f"{STORE}  Zarr v3, format 2, complete" in inspect
    verify = run([str(BIN / "builder"), "verify", STORE], tmp_path, with_endpoint)
    assert "no problems" in verify

    # Dask workers write their shards straight to the bucket: the same objects, byte for byte
    dask_store = f"s3://{BUCKET}/runs/dask.zarr"
    run([str(BIN / "builder"), "synth", "--out", dask_store, "--dask", "local:2"], tmp_path, with_endpoint)
    bucket = s3fs.S3FileSystem(key="test", secret="test", endpoint_url=s3_endpoint)
    assert stored_objects(bucket, STORE) == stored_objects(bucket, dask_store)

    fit = run([str(BIN / "trainer"), "fit", "--data", STORE, "--model", "models/model.keras"], tmp_path, with_endpoint)
    assert f"on {STORE}: train" in fit and "epoch 1/1:" in fit
    assert (tmp_path / "models" / "model.keras").is_file()


def test_a_bucket_that_does_not_exist_is_one_line(s3_endpoint, tmp_path):
    result = subprocess.run(
        [str(BIN / "builder"), "inspect", "s3://no-such-bucket/dataset.zarr"],
        cwd=tmp_path,
        env=aws_environment(s3_endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: s3://no-such-bucket/dataset.zarr: ")
