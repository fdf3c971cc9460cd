"""The store layout: sharding/chunks/codecs as configured (read from the zarr metadata), opening checks, inspect."""

from __future__ import annotations

import json
import shutil

import pytest
import zarr
from typer.testing import CliRunner

from builder.cli import app
from builder.dataset import store
from pianoscribe.errors import UserError
from tests.builder.conftest import tiny_settings
from tests.stores import synthesize_store


@pytest.fixture(scope="module")
def written(tiny_files, tmp_path_factory):
    settings = tiny_settings(tiny_files)
    path = tmp_path_factory.mktemp("store") / "dataset.zarr"
    synthesize_store(settings, path, path.parent)
    return path, settings


def test_arrays_are_sharded_chunked_and_compressed_as_configured(written):
    path, settings = written
    storage = settings["storage"]
    for name, width in store.SLICE_WIDTHS.items():
        metadata = json.loads((path / "train" / name / "zarr.json").read_text())
        assert metadata["zarr_format"] == 3
        assert metadata["chunk_grid"]["configuration"]["chunk_shape"] == [storage["shard_rows"], width]
        sharding = metadata["codecs"][0]
        assert sharding["name"] == "sharding_indexed"
        assert sharding["configuration"]["chunk_shape"] == [storage["chunk_rows"], width]
        inner = [codec["name"] for codec in sharding["configuration"]["codecs"]]
        assert inner[-1] == ("blosc" if name == "fft_magnitude" else "zstd")
    fft = json.loads((path / "train" / "fft_magnitude" / "zarr.json").read_text())
    assert fft["data_type"] == storage["fft_dtype"]
    blosc = fft["codecs"][0]["configuration"]["codecs"][-1]["configuration"]
    assert blosc["cname"] == "lz4" and blosc["shuffle"] == storage["shuffle"]
    # one file per shard: 360 train rows in shards of 128 rows
    assert sorted(p.name for p in (path / "train" / "fft_magnitude" / "c").iterdir()) == ["0", "1", "2"]


def test_complete_store_opens_and_incomplete_one_is_refused(written, tmp_path):
    path, _ = written
    root = store.open_store(path)
    assert root.attrs["complete"] is True and root.read_only
    with pytest.raises(UserError, match="no dataset"):
        store.open_store(tmp_path / "missing.zarr")
    incomplete = tmp_path / "incomplete.zarr"
    shutil.copytree(path, incomplete)
    group = zarr.open_group(str(incomplete), mode="r+")
    del group.attrs["complete"]
    with pytest.raises(UserError, match="incomplete"):
        store.open_store(incomplete)


def test_wrong_shapes_are_refused(written, tmp_path):
    path, _ = written
    broken = tmp_path / "broken.zarr"
    shutil.copytree(path, broken)
    group = zarr.open_group(str(broken), mode="r+")
    del group["test"]["key_onset"]
    group["test"].create_array("key_onset", shape=(10, 87), dtype="uint8")
    with pytest.raises(UserError, match="key_onset"):
        store.open_store(broken)
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(UserError, match="empty.zarr"):
        store.open_store(tmp_path / "empty.zarr")


def test_builder_inspect_describes_the_store(written):
    path, _ = written
    result = CliRunner().invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    for expected in (
        "train",
        "test",
        "fft_magnitude",
        "(360, 512)",
        "float16",
        "shard 128",
        "polyphony",
        "per key: rows active / onsets",
        "C4",
        "bright.h5",
        "sha256",
        "compression",
    ):
        assert expected in result.output, expected


def test_builder_inspect_of_nothing_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "nothing.zarr")])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
