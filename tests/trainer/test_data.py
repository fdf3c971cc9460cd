"""The tf.data pipeline over a tiny store written by ``builder synth``: what it reads, in what order, and errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tensorflow as tf
import zarr

from builder.dataset import store
from builder.dataset.store import SLICE_WIDTHS
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from trainer import data, features


@pytest.fixture(scope="module")
def splits(tiny_store):
    root = store.open_store(tiny_store[0])
    frames = int(root.attrs["frames_per_segment"])
    return {side: data.StoreSplit(side, root[side], frames) for side in ("train", "test")}


def settings(**overrides):
    values = {**defaults("fit"), "steps_per_epoch": 0}  # one pass per epoch unless a test says otherwise
    values.update(overrides)
    return values


def segment_keys(fft_magnitude: np.ndarray) -> list[bytes]:
    """One fingerprint per segment (its bytes), to compare sets of segments regardless of order."""
    return [segment.astype(np.float16).tobytes() for segment in fft_magnitude]


def test_blocks_are_whole_chunks_holding_whole_segments(splits):
    train = splits["train"]
    chunk_rows = train.arrays["fft_magnitude"].chunks[0]
    assert train.block_rows % chunk_rows == 0 and train.block_rows % train.frames_per_segment == 0
    assert train.n_blocks > 2  # the tiny store spans several blocks, so order matters
    rows = np.concatenate([train.read_block(block)[0] for block in range(train.n_blocks)])
    np.testing.assert_array_equal(rows, train.arrays["fft_magnitude"][:])


def test_a_pass_visits_every_segment_once_in_a_new_order_each_time(splits):
    train = splits["train"]
    frames = train.frames_per_segment
    batches, steps = data.training_dataset(train, settings(batch_size=frames, shuffle_buffer=4 * frames), 1.0)
    assert steps == train.n_segments
    iterator = iter(batches)
    passes = [np.concatenate([next(iterator)[0].numpy() for _ in range(steps)]) for _ in range(2)]
    stored = train.arrays["fft_magnitude"][:].astype(np.float32).reshape(-1, frames, 512)
    expected = sorted(segment_keys(stored))
    for one_pass in passes:
        assert one_pass.shape == (train.n_segments, frames, 512)
        assert sorted(segment_keys(one_pass)) == expected
    assert segment_keys(passes[0]) != segment_keys(passes[1])
    assert segment_keys(passes[0]) != segment_keys(stored)


def test_the_same_seed_gives_the_same_order(splits):
    train = splits["train"]
    first = [batch[0].numpy() for batch in data.training_dataset(train, settings(), 1.0)[0].take(3)]
    again = [batch[0].numpy() for batch in data.training_dataset(train, settings(), 1.0)[0].take(3)]
    for one, other in zip(first, again):
        np.testing.assert_array_equal(one, other)


def test_an_epoch_is_the_same_batches_whichever_epoch_the_stream_starts_at(splits):
    """What makes a resumed fit exact: epoch e's batches depend on (fit.seed, e) only, not on the epochs before."""
    train = splits["train"]
    frames = train.frames_per_segment
    tf.random.set_seed(0)  # as fit does with the default seed (tf.data refuses tensor seeds then)
    values = settings(batch_size=4 * frames, shuffle_buffer=16 * frames, steps_per_epoch=5, epochs=3)
    from_the_start, steps = data.training_dataset(train, values, 1.0)
    assert steps == 5
    epochs = np.stack([batch[0].numpy() for batch in from_the_start]).reshape(3, 5, -1)  # 3 epochs, no more
    resumed, _ = data.training_dataset(train, values, 1.0, first_epoch=2)
    np.testing.assert_array_equal(np.stack([batch[0].numpy() for batch in resumed]).reshape(5, -1), epochs[2])
    again = np.stack([batch[0].numpy() for batch in resumed]).reshape(5, -1)
    np.testing.assert_array_equal(again, epochs[2])  # iterating again gives the same batches
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert data.pass_seeds(0, 1, 0) != data.pass_seeds(0, 0, 1) != data.pass_seeds(1, 0, 0)


def test_a_damaged_shard_is_a_one_line_error_naming_the_array_and_the_shard(tiny_store, tmp_path):
    copy = tmp_path / "dataset.zarr"
    shutil.copytree(tiny_store[0], copy)
    (copy / "train" / "key_onset" / "c" / "2" / "0").write_bytes(b"not a shard" * 50)  # shards of 1024 rows
    root = store.open_store(copy)
    train = data.StoreSplit(f"{copy}/train", root["train"], int(root.attrs["frames_per_segment"]))
    expected = rf"^{copy}/train/key_onset: shard 2 \(rows 2048\.\.3071\) cannot be read \(\w+: [^\n]+\)$"
    with pytest.raises(UserError, match=expected):
        train.read_block(2048 // train.block_rows)
    # read inside tf.data (TensorFlow's threads), it comes out as the same line, not as TensorFlow's error
    fresh = data.StoreSplit(train.name, root["train"], train.frames_per_segment)
    batches, _ = data.training_dataset(fresh, settings(epochs=1), 1.0)
    with pytest.raises(UserError, match=expected), data.store_read_errors(fresh):
        for _ in batches:
            pass


def test_batches_hold_whole_segments_with_all_targets(splits):
    train = splits["train"]
    frames = train.frames_per_segment
    energy_scale = 2.0
    fft_magnitude, targets = next(iter(data.training_dataset(train, settings(batch_size=4 * frames), energy_scale)[0]))
    assert fft_magnitude.shape == (4, frames, 512) and fft_magnitude.dtype == "float32"
    assert set(targets) == {"active", "onset", "energy"}
    for head in targets:
        assert targets[head].shape == (4, frames, 88)
    # the energy target of the first stored segment, computed directly
    first = data.evaluation_dataset(train, 4 * frames, energy_scale)
    _, first_targets = next(iter(first))
    expected = features.energy_target(train.arrays["key_energy"][:frames], energy_scale)
    np.testing.assert_allclose(first_targets["energy"].numpy()[0], expected, rtol=2e-3, atol=1e-3)


def test_onset_targets_can_cover_the_buffer_after_the_onset_too(splits):
    """``onset_target_frames: 2``: the same batches, each onset target also set in the next frame of its segment;
    nothing else changes."""
    train = splits["train"]
    one, two = (
        next(
            iter(
                data.training_dataset(
                    train, settings(batch_size=64 * train.frames_per_segment, onset_target_frames=n), 1.0
                )[0]
            )
        )
        for n in (1, 2)
    )
    np.testing.assert_array_equal(one[0].numpy(), two[0].numpy())
    onset = one[1]["onset"].numpy()
    assert onset.sum() > 10  # the tiny store's segments hold onsets
    expected = onset.copy()
    expected[:, 1:] = np.maximum(onset[:, 1:], onset[:, :-1])
    np.testing.assert_array_equal(two[1]["onset"].numpy(), expected)
    for head in ("active", "energy"):
        np.testing.assert_array_equal(one[1][head].numpy(), two[1][head].numpy())


def test_evaluation_reads_the_whole_split_in_store_order(splits):
    test = splits["test"]
    batches = list(data.evaluation_dataset(test, 5 * test.frames_per_segment, 1.0))
    fft_magnitude = np.concatenate([batch[0].numpy() for batch in batches]).reshape(-1, 512)
    active = np.concatenate([batch[1]["active"].numpy() for batch in batches]).reshape(-1, 88)
    np.testing.assert_array_equal(fft_magnitude, test.arrays["fft_magnitude"][:].astype(np.float32))
    np.testing.assert_array_equal(active, test.arrays["key_active"][:])
    assert len(list(data.evaluation_dataset(test, test.frames_per_segment, 1.0, max_steps=2))) == 2


def test_statistics_come_from_whole_blocks_of_the_train_split(splits):
    train = splits["train"]
    mean, std, energy_scale = data.train_statistics(train, 100.0, max_rows=10**9, energy_percentile=99.0)
    compressed = features.compress_magnitude(train.arrays["fft_magnitude"][:], 100.0).astype(np.float64)
    np.testing.assert_allclose(mean, compressed.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std, np.maximum(compressed.std(axis=0), features.STD_FLOOR), rtol=1e-3, atol=1e-4)
    active = train.arrays["key_active"][:].astype(bool)
    sounding = train.arrays["key_energy"][:][active]
    assert energy_scale == pytest.approx(np.percentile(sounding[sounding > 0], 99.0), rel=1e-5)
    assert len(train.sample_blocks(train.block_rows)) == 1


def write_group(path, rows: int, widths: dict[str, int]) -> zarr.Group:
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, width in widths.items():
        group.create_array(name, shape=(rows, width), dtype="float32", chunks=(max(rows, 1), width))
    return group


def test_an_empty_split_is_a_one_line_error(tmp_path):
    """(Shapes are checked once, by ``builder.dataset.store.open_store``: tests/builder/dataset/test_store.py.)"""
    with pytest.raises(UserError, match="empty"):
        data.StoreSplit("test", write_group(tmp_path / "empty", 0, SLICE_WIDTHS), 8)
