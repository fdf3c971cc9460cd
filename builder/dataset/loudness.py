"""How loud a note of each key and velocity is in the training data: the store's ``attack_energy`` attribute.

The energy head learns ``key_energy``, which depends on the key and on each bank's velocity layers, not on
velocity alone (a velocity-64 A0 and a velocity-64 C8 have very different energies). To turn the head's value
at an attack back into a MIDI velocity, the model needs the relation the training banks had: for every key and
for the velocities of ``ATTACK_VELOCITIES``, the ``key_energy`` of the loudest of a lone note's first
``ATTACK_BUFFERS`` buffers, rendered by the same engine and settings as the store (layers, gains, release),
averaged (geometric mean) over onset positions within a buffer, then the median over the train banks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from builder.banks import read_bank
from builder.corpus.notes import NOTE_DTYPE
from builder.dataset.render import render_notes
from pianoscribe.constants import BUFFER_SIZE, LOWEST_KEY, N_KEYS, SAMPLE_RATE

ATTACK_VELOCITIES = (8, 16, 32, 48, 64, 80, 96, 112, 127)
ATTACK_BUFFERS = 3  # the decoder reads the energy head over the onset buffer and the next two
ONSET_OFFSETS = (0, 256, 512, 768)  # samples into a buffer where the lone notes start
NOTE_SPACING_BUFFERS = 8  # a lone note lasts ATTACK_BUFFERS, then its release (< 4 buffers) fades it out


def attack_energy(bank_paths: list[Path], settings: dict[str, Any]) -> dict[str, Any]:
    """``{"velocities": [...], "key_energy": [88][velocities]}`` over ``bank_paths`` (``settings``: ``synth``).

    Deterministic: the same banks and settings give the same numbers (one engine thread per render).
    """
    notes = _lone_notes()
    per_bank = np.stack([_bank_attack_energy(read_bank(path), notes, settings) for path in bank_paths])
    key_energy = np.median(per_bank, axis=0)
    return {
        "velocities": list(ATTACK_VELOCITIES),
        "key_energy": [[float(f"{value:.6g}") for value in row] for row in key_energy],
    }


def _lone_notes() -> np.ndarray:
    """Every key x velocity x onset offset once, each alone: ``NOTE_SPACING_BUFFERS`` buffers apart."""
    keys, velocities, offsets = np.meshgrid(
        np.arange(N_KEYS), np.asarray(ATTACK_VELOCITIES), np.asarray(ONSET_OFFSETS), indexing="ij"
    )
    starts = np.arange(keys.size) * NOTE_SPACING_BUFFERS * BUFFER_SIZE + offsets.ravel()
    notes = np.zeros(keys.size, dtype=NOTE_DTYPE)
    notes["onset"] = starts / SAMPLE_RATE
    notes["offset"] = (starts + ATTACK_BUFFERS * BUFFER_SIZE) / SAMPLE_RATE
    notes["key"] = keys.ravel() + LOWEST_KEY
    notes["velocity"] = velocities.ravel()
    return notes


def _bank_attack_energy(bank: Any, notes: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """``[88, velocities]``: each lone note's loudest attack buffer, geometric mean over onset offsets."""
    audio = render_notes(notes, bank, settings, threads=1)
    span = NOTE_SPACING_BUFFERS * BUFFER_SIZE
    audio = np.pad(audio, (0, max(0, len(notes) * span - len(audio))))[: len(notes) * span]
    slots = audio.reshape(len(notes), NOTE_SPACING_BUFFERS, BUFFER_SIZE)[:, :ATTACK_BUFFERS].astype(np.float64)
    loudest = (slots**2).sum(axis=2).max(axis=1)  # the onset's buffer holds the note from its offset on
    loudest = loudest.reshape(N_KEYS, len(ATTACK_VELOCITIES), len(ONSET_OFFSETS))
    return np.exp(np.log(np.maximum(loudest, 1e-12)).mean(axis=2))
