"""A small trained model, shared per session: real bank -> real corpus -> ``builder synth`` -> ``trainer fit``.

For tests that need a model that actually transcribes (``trainer infer`` on a rendered chord, ``trainer
evaluate`` end to end). To learn in seconds the world is small: the TimGM6mb piano (ships inside
pretty_midi, nothing downloaded) on 15 keys around middle C, two velocity layers, and a corpus of random
one-to-three-note chords on those keys; about 16k slices and a dozen short epochs of a narrow ``context``
model (about 15 s of training on 2 idle cores).
The folder is laid out like the project's ``data/`` (``banks/``, ``corpus/``, ``dataset.zarr``), so a CLI
run from its parent finds everything by its default paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

PIANO_KEYS = tuple(range(58, 73))  # A#3 .. C5: the test chord C4-E4-G4 and its neighbours
PIANO_BANK = "tinypiano"
CHORD_CORPUS = "chords"


@dataclass(frozen=True)
class PianoModel:
    """Where the session's trained model and the world it learned from live."""

    root: Path  # parent of data/ (run CLIs from here)
    data_dir: Path  # root/data: banks/, corpus/, dataset.zarr
    store: Path
    model: Path
    bank: Path
    synth_settings: dict


def random_chord_pieces(keys: tuple[int, ...], count: int, seconds: float, seed: int):
    """Pieces of chords of 1-3 random keys, 0.15-0.6 s long (shorter than the bank's recordings), small gaps."""
    from builder import corpus

    rng = np.random.default_rng(seed)
    pieces = []
    for index in range(count):
        rows, time = [], 0.2
        while time < seconds:
            duration = rng.uniform(0.15, 0.6)
            for key in rng.choice(keys, size=rng.integers(1, 4), replace=False):
                rows.append((time, time + duration, key, rng.integers(40, 120)))
            time += duration + rng.uniform(0.0, 0.15)
        notes = np.array(rows, dtype=corpus.NOTE_DTYPE)
        pieces.append(
            corpus.Piece(
                piece_id=f"{CHORD_CORPUS}/{index:02d}", notes=notes[np.lexsort((notes["key"], notes["onset"]))]
            )
        )
    return pieces


@pytest.fixture(scope="session")
def piano_model(tmp_path_factory) -> PianoModel:
    from builder import banks, corpus
    from pianoscribe.defaults import defaults
    from tests.stores import synthesize_store
    from trainer import fit

    root = tmp_path_factory.mktemp("piano_model")
    data_dir = root / "data"
    bank = banks.build_bank(
        "timgm6mb",
        name=PIANO_BANK,
        settings={"layers": 2, "max_seconds": 1.0},
        cache_dir=data_dir / "cache",
        keys=PIANO_KEYS,
    )
    bank_path = banks.bank_path(PIANO_BANK, data_dir)
    banks.write_bank(bank, bank_path)
    corpus.write_corpus(
        corpus.Corpus(
            name=CHORD_CORPUS,
            pieces=random_chord_pieces(PIANO_KEYS, 24, 8.0, seed=0),
            attrs={"source": "tests/conftest.py"},
        ),
        corpus.corpus_path(CHORD_CORPUS, data_dir),
    )

    synth_settings = defaults("synth")
    synth_settings.update(
        {
            "n": 16384,
            "threads": 2,
            "frames_per_segment": 8,
            "test_fraction": 0.25,
            "corpora": [CHORD_CORPUS],
            "train_banks": [PIANO_BANK],
            "test_banks": [PIANO_BANK],
        }
    )
    synth_settings["storage"].update({"chunk_rows": 1024, "shard_rows": 4096})
    store = data_dir / "dataset.zarr"
    synthesize_store(synth_settings, store, data_dir)

    fit_settings = defaults("fit")
    fit_settings.update(
        {
            "epochs": 12,
            "steps_per_epoch": 0,  # whole passes over this small store
            "batch_size": 64,
            "learning_rate": 0.003,
            "context": {
                "freq_filters": [4],
                "freq_kernel": 5,
                "freq_pool": 2,
                "frame_units": 64,
                "context_units": 64,
                "dropout": 0.1,
            },
        }
    )
    model = root / "models" / "model.keras"
    fit.fit(store, model, fit_settings, metrics_dir=root / "metrics", report=None, logs_dir=root / "logs")
    return PianoModel(
        root=root, data_dir=data_dir, store=store, model=model, bank=bank_path, synth_settings=synth_settings
    )


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size)`` mounts a tmpfs of ``size`` (e.g. "64k") in the test's folder: a disk that fills up
    (root only: skipped elsewhere); unmounted after the test."""
    import subprocess

    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{size}"
        folder.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.decode().strip()[:80]})")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)
