"""Damaged stores (mutated metadata, garbage or cut shard files) give the project's one-line errors, never another
exception: ``open_store`` refuses with ``UserError``, ``verify_store`` lists problems."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builder.dataset import store
from builder.dataset.verify import verify_store
from pianoscribe.errors import UserError
from tests.builder.conftest import tiny_settings
from tests.stores import synthesize_store

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def pristine(tiny_files, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "dataset.zarr"
    synthesize_store(tiny_settings(tiny_files, n=512), path, path.parent)
    return path


def copy_of(pristine: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(pristine, target)
    return target


def mutate(data: bytes, position: int, replacement: bytes, cut: bool) -> bytes:
    position %= max(len(data), 1)
    return data[:position] if cut else data[:position] + replacement + data[position + len(replacement) :]


def opened_or_refused(path: Path) -> None:
    """Either the store opens and verifies (finding problems or not), or it is refused with a UserError."""
    try:
        store.open_store(path)
    except UserError:
        return
    result = verify_store(path)
    assert all(isinstance(problem, str) and "\n" not in problem for problem in result.problems)


@FUZZ
@given(
    which=st.sampled_from(
        ["zarr.json", "train/zarr.json", "train/fft_magnitude/zarr.json", "test/key_energy/zarr.json"]
    ),
    position=st.integers(0, 4000),
    replacement=st.binary(min_size=1, max_size=12),
    cut=st.booleans(),
)
def test_mutated_metadata_is_refused_in_one_line(pristine, tmp_path, which, position, replacement, cut):
    path = copy_of(pristine, tmp_path, "meta.zarr")
    file = path / which
    file.write_bytes(mutate(file.read_bytes(), position, replacement, cut))
    opened_or_refused(path)


@FUZZ
@given(
    side=st.sampled_from(["train", "test"]),
    name=st.sampled_from([*store.SLICE_WIDTHS, "piece_id"]),
    position=st.integers(0, 200_000),
    replacement=st.binary(min_size=1, max_size=64),
    cut=st.booleans(),
)
def test_damaged_shards_are_problems_not_crashes(pristine, tmp_path, side, name, position, replacement, cut):
    path = copy_of(pristine, tmp_path, "shard.zarr")
    file = path / side / name / "c" / "0" / ("0" if name in store.SLICE_WIDTHS else "")
    file = file if file.is_file() else path / side / name / "c" / "0"
    file.write_bytes(mutate(file.read_bytes(), position, replacement, cut))
    opened_or_refused(path)


def test_attributes_that_are_not_ours_are_refused(pristine, tmp_path):
    path = copy_of(pristine, tmp_path, "attrs.zarr")
    metadata = json.loads((path / "zarr.json").read_text())
    metadata["attributes"] = {"complete": True, "format_version": 1}  # sealed, but none of our attributes
    (path / "zarr.json").write_text(json.dumps(metadata))
    with pytest.raises(UserError):
        store.open_store(path)
