"""A tiny dataset written by the real ``builder synth`` (tiny banks and corpus made here), shared per session.

Two tiny banks of decaying harmonic tones with different timbres (train / test), one corpus of short random
chords and runs, and a store of a few thousand slices with small chunks so it spans several blocks.
Augmentation is off so a stored slice can be compared with the same buffer rendered by ``builder.render``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builder import banks, corpus
from pianoscribe.defaults import defaults
from tests.stores import synthesize_store

SAMPLE_RATE = 44100
LAYERS = 2
RECORDING_SECONDS = 0.6


def harmonic_bank(name: str, brightness: float) -> banks.Bank:
    """Every key, two layers: a few decaying partials; ``brightness`` sets how slowly upper partials fall off."""
    time = np.arange(int(RECORDING_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    recordings = []
    for key in range(21, 109):
        fundamental = 440.0 * 2 ** ((key - 69) / 12)
        tone = np.zeros_like(time)
        for partial in range(1, 7):
            if fundamental * partial < SAMPLE_RATE / 2.2:
                tone += np.sin(2 * np.pi * fundamental * partial * time) / partial ** (2.0 - brightness)
        tone *= np.exp(-4.0 * time)
        tone /= np.abs(tone).max()
        recordings.extend([0.05 * tone, 0.2 * tone])
    lengths = np.array([len(recording) for recording in recordings], dtype=np.int64).reshape(88, LAYERS)
    offsets = np.concatenate([[0], np.cumsum(lengths.ravel())[:-1]]).reshape(88, LAYERS)
    return banks.Bank(
        name=name,
        sample_rate=SAMPLE_RATE,
        layer_velocities=banks.layer_velocities(LAYERS),
        audio=np.concatenate(recordings).astype(np.float32),
        offsets=offsets,
        lengths=lengths,
        source="test",
    )


def random_pieces(count: int, seconds: float, seed: int) -> list[corpus.Piece]:
    rng = np.random.default_rng(seed)
    pieces = []
    for index in range(count):
        onsets = np.sort(rng.uniform(0, seconds - 0.3, 40))
        notes = np.zeros(len(onsets), dtype=corpus.NOTE_DTYPE)
        notes["onset"] = onsets
        notes["offset"] = onsets + rng.uniform(0.1, 0.8, len(onsets))
        notes["key"] = rng.integers(40, 90, len(onsets))
        notes["velocity"] = rng.integers(30, 127, len(onsets))
        notes.sort(order=["onset", "key"])
        pieces.append(corpus.Piece(piece_id=f"test/{index:03d}", notes=notes))
    return pieces


def write_tiny_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"train_bank": folder / "bright.h5", "test_bank": folder / "mellow.h5", "corpus": folder / "tiny.h5"}
    banks.write_bank(harmonic_bank("bright", 1.2), paths["train_bank"])
    banks.write_bank(harmonic_bank("mellow", 0.3), paths["test_bank"])
    corpus.write_corpus(corpus.Corpus(name="tiny", pieces=random_pieces(16, 6.0, seed=1)), paths["corpus"])
    return paths


def tiny_synth_settings(paths: dict[str, Path], n: int = 6144) -> dict:
    settings = defaults("synth")
    settings.update(
        {
            "n": n,
            "threads": 1,
            "frames_per_segment": 8,
            "test_fraction": 0.3,
            "corpora": [str(paths["corpus"])],
            "train_banks": [str(paths["train_bank"])],
            "test_banks": [str(paths["test_bank"])],
        }
    )
    settings["augment"].update({"noise_db": -200.0, "gain_db": 0.0, "tilt_db_per_octave": 0.0, "detune_cents": 0.0})
    settings["storage"].update({"chunk_rows": 256, "shard_rows": 1024})
    return settings


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_inputs(tmp_path_factory.mktemp("tiny_inputs"))


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, tiny_inputs) -> tuple[Path, dict]:
    """``(store path, synth settings)`` of a tiny store written by ``builder.synth.synthesize``."""
    folder = tmp_path_factory.mktemp("tiny_store")
    settings = tiny_synth_settings(tiny_inputs)
    store_path = folder / "dataset.zarr"
    synthesize_store(settings, store_path, folder)
    return store_path, settings
