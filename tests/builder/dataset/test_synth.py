"""``builder synth`` end to end on tiny files: the split, the banks per side, determinism, settings errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rich.console import Console

from builder.dataset import store, synth
from builder.dataset.loudness import attack_energy
from builder.dataset.plan import piece_side
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from tests.builder.conftest import tiny_settings
from tests.stores import synthesize_store

QUIET = Console(quiet=True)
ARRAYS = ("fft_magnitude", "key_energy", "key_active", "key_onset", "piece_id", "bank", "start_sample")


def write(settings, path):
    return synthesize_store(settings, path, path.parent)


@pytest.fixture(scope="module")
def written(tiny_files, tmp_path_factory):
    settings = tiny_settings(tiny_files)
    path = tmp_path_factory.mktemp("synth") / "dataset.zarr"
    summary = write(settings, path)
    return path, settings, summary


@given(piece_id=st.text(min_size=1, max_size=40), seed=st.integers(0, 2**32))
@hypothesis_settings(max_examples=200, deadline=None)
def test_a_piece_side_is_a_pure_function_of_id_and_seed(piece_id, seed):
    side = piece_side(piece_id, seed, 0.3)
    assert side in ("train", "test")
    assert piece_side(piece_id, seed, 0.3) == side
    assert piece_side(piece_id, seed, 0.0) == "train"
    if side == "test":  # a larger test fraction keeps every test piece on the test side
        assert piece_side(piece_id, seed, 0.5) == "test"


def test_the_split_is_about_the_test_fraction():
    sides = [piece_side(f"piece/{index}", 7, 0.15) for index in range(4000)]
    assert 0.12 < sides.count("test") / len(sides) < 0.18


def test_no_piece_is_on_both_sides_and_each_side_uses_its_banks(written, tiny_files):
    path, settings, summary = written
    root = store.open_store(path)
    split = root.attrs["split"]
    assert split["train"] and split["test"] and not set(split["train"]) & set(split["test"])
    for side in ("train", "test"):
        used = set(root[side]["piece_id"][:].tolist())
        assert used <= set(split[side])
        for piece_id in used:
            assert piece_side(piece_id, settings["seed"], settings["test_fraction"]) == side
        assert set(root[side]["bank"][:].tolist()) == {str(tiny_files[f"{side}_bank"])}
    assert summary.rows == {"train": 360, "test": 152}  # 128 segments, round(0.3 * 128) = 38 on the test side
    assert root["train"]["fft_magnitude"].shape == (360, 512)
    assert root["test"]["start_sample"].shape == (38,)


def test_the_store_records_parameters_hashes_and_statistics(written, tiny_files):
    path, settings, summary = written
    attrs = store.open_store(path).attrs.asdict()
    # how the run was carried out (threads, Dask) is not recorded: it changes no byte
    assert attrs["params"] == {key: value for key, value in settings.items() if key not in ("threads", "dask")}
    assert attrs["frames_per_segment"] == 4 and attrs["complete"] is True
    assert set(attrs["banks"]) == {str(tiny_files["train_bank"]), str(tiny_files["test_bank"])}
    assert all(len(digest) == 64 for digest in [*attrs["banks"].values(), *attrs["corpora"].values()])
    train = attrs["statistics"]["train"]
    assert train["rows"] == 360 and sum(train["active_per_key"]) == train["active_total"]
    assert summary.keys_covered["train"] == sum(count > 0 for count in train["active_per_key"]) > 0
    assert {"numpy", "zarr", "engine", "pianoscribe"} <= set(attrs["versions"])
    # how loud each key x velocity is through the train bank, for the model's velocity curve
    assert attrs["attack_energy"] == attack_energy([tiny_files["train_bank"]], settings)


def test_same_seed_same_bytes_whatever_the_threads(tiny_files, tmp_path):
    stores = []
    for threads in (1, 2):
        settings = tiny_settings(tiny_files)
        settings["threads"] = threads
        write(settings, tmp_path / f"threads{threads}.zarr")
        stores.append(store.open_store(tmp_path / f"threads{threads}.zarr"))
    for side in ("train", "test"):
        for name in ARRAYS:
            first, second = stores[0][side][name][:], stores[1][side][name][:]
            if first.dtype.kind in "fiu":
                assert first.tobytes() == second.tobytes(), (side, name)
            else:  # strings
                assert first.tolist() == second.tolist(), (side, name)
    other = tiny_settings(tiny_files)
    other["seed"] = 1
    write(other, tmp_path / "seed1.zarr")
    assert not np.array_equal(
        store.open_store(tmp_path / "seed1.zarr")["train"]["start_sample"][:], stores[0]["train"]["start_sample"][:]
    )


def test_augmentation_is_off_on_the_test_side_unless_asked(tiny_files, tmp_path):
    clean = tiny_settings(tiny_files, augment=False)
    augmented = tiny_settings(tiny_files)
    write(clean, tmp_path / "clean.zarr")
    write(augmented, tmp_path / "augmented.zarr")
    a, b = store.open_store(tmp_path / "clean.zarr"), store.open_store(tmp_path / "augmented.zarr")
    assert np.array_equal(a["test"]["fft_magnitude"][:], b["test"]["fft_magnitude"][:])
    assert not np.array_equal(a["train"]["fft_magnitude"][:], b["train"]["fft_magnitude"][:])
    assert np.array_equal(a["train"]["key_active"][:], b["train"]["key_active"][:])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n": 510}, "synth.n: 510 is not a multiple"),
        ({"window": "kaiser"}, "synth.window"),
        ({"bogus": 1}, "synth.bogus: unknown parameter"),
        ({"test_fraction": 1.0}, "synth.test_fraction"),
        ({"storage": {"shard_rows": 100}}, "synth.storage.shard_rows"),
        ({"storage": {"codec": "lzma"}}, "synth.storage.codec"),
        ({"augment": {"detune_cents": -3}}, "synth.augment.detune_cents"),
        ({"bank_precision": "int8"}, "synth.bank_precision"),
    ],
)
def test_bad_settings_are_one_line_errors(tiny_files, tmp_path, change, message):
    settings = tiny_settings(tiny_files)
    for key, value in change.items():
        if isinstance(value, dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    with pytest.raises(UserError, match=message):
        write(settings, tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()


def test_missing_bank_or_corpus_file_is_a_user_error(tiny_files, tmp_path):
    settings = tiny_settings(tiny_files)
    settings["train_banks"] = [str(tmp_path / "nowhere.h5")]
    with pytest.raises(UserError, match="nowhere.h5"):
        write(settings, tmp_path / "x.zarr")
    settings = tiny_settings(tiny_files)
    settings["corpora"] = [str(tmp_path / "none.h5")]
    with pytest.raises(UserError, match="none.h5"):
        write(settings, tmp_path / "x.zarr")


def test_the_defaults_are_valid_settings():
    assert defaults("synth") == synth.check_settings(defaults("synth"))


def test_versions_of_one_chorale_fall_on_the_same_side():
    from builder.dataset.plan import piece_side, split_group

    assert split_group("chorales/bwv18.5-lz") == split_group("chorales/bwv18.5-w") == "chorales/bwv18.5"
    assert split_group("procedural/0/00017") == "procedural/0/00017"
    for seed in range(40):
        sides = {piece_side(f"chorales/bwv248.23{suffix}", seed, 0.5) for suffix in ("", "-2", "-s")}
        assert len(sides) == 1


def test_long_fft_bins_add_the_long_window_array_and_change_nothing_else(tiny_files, tmp_path, written):
    from builder.dataset.inspect import describe_store
    from builder.dataset.verify import verify_store

    _, settings, _ = written
    write({**settings, "long_fft_bins": 0}, tmp_path / "short.zarr")
    write({**settings, "long_fft_bins": 96}, tmp_path / "long.zarr")
    with_long, without = store.open_store(tmp_path / "long.zarr"), store.open_store(tmp_path / "short.zarr")
    for side in store.SIDES:
        assert with_long[side][store.LONG_FFT].shape == (without[side]["fft_magnitude"].shape[0], 96)
        assert with_long[side][store.LONG_FFT].dtype == without[side]["fft_magnitude"].dtype
        for name in ARRAYS:
            assert np.array_equal(with_long[side][name][:], without[side][name][:]), (side, name)
        assert store.LONG_FFT not in without[side]
    assert verify_store(tmp_path / "long.zarr").ok
    assert any(store.LONG_FFT in line for line in describe_store(tmp_path / "long.zarr"))
