"""Tiny real inputs for the synthesizer tests: banks of a few keys of decaying tones, short pieces, files on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builder import banks, corpus
from pianoscribe.defaults import defaults

SAMPLE_RATE = 44100
SOUNDING_KEYS = (48, 60, 64, 67, 72)  # the other keys of the tiny banks are silent (length 0)


def tone_bank(
    name: str = "tones", layers: int = 2, seconds: float = 0.5, keys=SOUNDING_KEYS, decay: float = 5.0
) -> banks.Bank:
    """A few keys of decaying sines (louder per layer), every other key silent."""
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    recordings, lengths = [], np.zeros((88, layers), np.int64)
    for key in keys:
        frequency = 440.0 * 2 ** ((key - 69) / 12)
        for layer in range(layers):
            tone = 0.1 * (layer + 1) * np.sin(2 * np.pi * frequency * time) * np.exp(-decay * time)
            recordings.append(tone.astype(np.float32))
            lengths[key - 21, layer] = len(tone)
    audio = np.concatenate(recordings)
    offsets = np.zeros((88, layers), np.int64)
    position = 0
    for key in keys:
        for layer in range(layers):
            offsets[key - 21, layer] = position
            position += lengths[key - 21, layer]
    return banks.Bank(
        name=name,
        sample_rate=SAMPLE_RATE,
        layer_velocities=banks.layer_velocities(layers),
        audio=audio,
        offsets=offsets,
        lengths=lengths,
        source="test",
    )


def notes(*rows: tuple[float, float, int, int]) -> np.ndarray:
    """NOTE_DTYPE notes from (onset s, offset s, key, velocity) tuples, sorted as a corpus keeps them."""
    array = np.array(list(rows), dtype=corpus.NOTE_DTYPE)
    return np.sort(array, order=("onset", "key"))


def random_pieces(count: int, seconds: float, seed: int, prefix: str = "tiny") -> list[corpus.Piece]:
    rng = np.random.default_rng(seed)
    pieces = []
    for index in range(count):
        onsets = rng.uniform(0, seconds - 0.2, 12)
        rows = [
            (onset, onset + rng.uniform(0.05, 0.6), int(rng.choice(SOUNDING_KEYS)), int(rng.integers(1, 128)))
            for onset in onsets
        ]
        pieces.append(corpus.Piece(piece_id=f"{prefix}/{index:03d}", notes=notes(*rows)))
    return pieces


def tiny_settings(paths: dict[str, Path], n: int = 512, augment: bool = True) -> dict:
    """``synth`` settings over the tiny files: small shards so a store has several."""
    settings = defaults("synth")
    settings.update(
        {
            "n": n,
            "threads": 1,
            "frames_per_segment": 4,
            "test_fraction": 0.3,
            "corpora": [str(paths["corpus"])],
            "train_banks": [str(paths["train_bank"])],
            "test_banks": [str(paths["test_bank"])],
        }
    )
    settings["storage"].update({"chunk_rows": 32, "shard_rows": 128})
    if not augment:
        settings["augment"].update({"noise_db": -200.0, "gain_db": 0.0, "tilt_db_per_octave": 0.0, "detune_cents": 0.0})
    return settings


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """Two tone banks (train, test) and a corpus of 20 two-second pieces, written with the real writers."""
    folder = tmp_path_factory.mktemp("synth_inputs")
    paths = {"train_bank": folder / "bright.h5", "test_bank": folder / "dull.h5", "corpus": folder / "tiny.h5"}
    banks.write_bank(tone_bank("bright", decay=3.0), paths["train_bank"])
    banks.write_bank(tone_bank("dull", decay=8.0), paths["test_bank"])
    corpus.write_corpus(corpus.Corpus(name="tiny", pieces=random_pieces(20, 2.0, seed=3)), paths["corpus"])
    return paths
