"""A store at a URL (here ``memory://``, fsspec's in-process object store): the same bytes as on disk, written in
place and unreadable until sealed, resumed from its records, never replacing objects that are not a dataset."""

from __future__ import annotations

import itertools

import fsspec
import pytest

from builder.dataset import store
from builder.dataset.verify import verify_store
from pianoscribe.errors import UserError
from pianoscribe.storage import StoreLocation
from tests.builder.conftest import tiny_settings
from tests.builder.dataset.test_reliability import tree_bytes
from tests.stores import synthesize_store

URLS = (f"memory://pianoscribe-test-{index}/dataset.zarr" for index in itertools.count())


def objects(url: str) -> dict[str, bytes]:
    """Every object under ``url`` by relative key: two stores are the same bytes when these are equal."""
    filesystem, root = fsspec.core.url_to_fs(url)
    return {path.removeprefix(root).lstrip("/"): filesystem.cat_file(path) for path in sorted(filesystem.find(root))}


@pytest.fixture
def memory_url():
    url = next(URLS)
    yield url
    StoreLocation(url).remove()


def test_a_store_at_a_url_is_the_local_store_byte_for_byte(tiny_files, tmp_path, memory_url):
    settings = tiny_settings(tiny_files, n=1024)
    synthesize_store(settings, tmp_path / "dataset.zarr", tmp_path)
    summary = synthesize_store(settings, StoreLocation(memory_url), tmp_path)
    assert objects(memory_url) == tree_bytes(tmp_path / "dataset.zarr")
    assert summary.disk_bytes == sum(len(data) for data in objects(memory_url).values())
    root = store.open_store(memory_url)
    assert (
        root["train"]["fft_magnitude"].shape
        == store.open_store(tmp_path / "dataset.zarr")["train"]["fft_magnitude"].shape
    )
    assert verify_store(memory_url).ok


def test_an_interrupted_store_at_a_url_is_refused_then_resumed_in_place(tiny_files, tmp_path, memory_url):
    settings = tiny_settings(tiny_files, n=1024)
    synthesize_store(settings, tmp_path / "dataset.zarr", tmp_path)

    class Stop(Exception):
        pass

    def stop_after_two_shards(side, done, total, rate):
        if done >= 256:
            raise Stop

    with pytest.raises(Stop):
        synthesize_store(settings, StoreLocation(memory_url), tmp_path, progress=stop_after_two_shards)
    with pytest.raises(UserError, match="incomplete dataset"):
        store.open_store(memory_url)
    said: list[str] = []
    synthesize_store(settings, StoreLocation(memory_url), tmp_path, say=said.append)
    assert any(line.startswith(f"resuming {memory_url}: ") for line in said), said
    assert int(said[0].split(": ")[1].split()[0]) >= 2  # the shards written before the stop were kept
    assert objects(memory_url) == tree_bytes(tmp_path / "dataset.zarr")


def test_objects_that_are_not_a_dataset_are_never_replaced(tiny_files, tmp_path, memory_url):
    filesystem, root = fsspec.core.url_to_fs(memory_url)
    filesystem.pipe_file(f"{root}/holiday/beach.jpg", b"\xff\xd8 a picture")
    with pytest.raises(UserError, match="not a dataset builder synth wrote"):
        synthesize_store(tiny_settings(tiny_files, n=256), StoreLocation(memory_url), tmp_path)
    assert objects(memory_url) == {"holiday/beach.jpg": b"\xff\xd8 a picture"}


def test_a_missing_store_at_a_url_and_an_unknown_backend_are_one_line_errors(memory_url):
    with pytest.raises(UserError, match=f"{memory_url}: no dataset here"):
        store.open_store(memory_url)
    with pytest.raises(UserError, match="nowhere://bucket/x.zarr: no fsspec backend"):
        store.open_store("nowhere://bucket/x.zarr")
