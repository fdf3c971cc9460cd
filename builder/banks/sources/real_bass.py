"""Real-bass variants ``timgm6mb-real``, ``merlin-real``: a SoundFont bank whose bass looks like a real grand's
(weak fundamentals below A3, stretch tuning), so the training pianos' bass is closer to a recorded one
(docs/training.md "Bass")."""

from __future__ import annotations

import numpy as np
import soxr

from builder.banks.format import Bank
from builder.banks.processing import attack_rms, pack_recordings
from pianoscribe import keyboard
from pianoscribe.constants import LOWEST_KEY, N_KEYS

REAL_BASS_SUFFIX = "-real"
REAL_BASS_TOP_KEY = 57  # A3: keys below it get the bass high-pass (full strength at A0, none at A3)
REAL_BASS_CUTOFF_HARMONICS = (2.0, 7.0)  # high-pass cutoff / f0 at A0, drawn per key uniformly in this range
REAL_BASS_FILTER_ORDER = 2
STRETCH_CENTS = 15.0  # stretch tuning: A0 this many cents flat, C8 this many cents sharp
STRETCH_JITTER_CENTS = 3.0  # +- per-key random mistuning on top of the curve


def real_bass_variant(bank: Bank, name: str, seed: int = 0) -> Bank:
    """A copy of ``bank`` whose bass looks like a real grand's: weak fundamental, stretch-tuned.

    Why: a real piano's lowest octaves carry their energy in partials 5-14x above the fundamental and are
    tuned flat (stretch tuning), while SoundFont pianos put it at the fundamental and 2nd harmonic, in
    tune; a model trained on those misses real bass notes. Keys below ``REAL_BASS_TOP_KEY`` get a
    ``REAL_BASS_FILTER_ORDER`` Butterworth high-pass at a per-key random multiple of f0 (range
    ``REAL_BASS_CUTOFF_HARMONICS`` at A0, tapering linearly to 1x at A3), then their attack RMS is restored
    (the key's loudness, hence its energy label, is unchanged); every key is detuned by
    ``keyboard.stretch_cents`` +- ``STRETCH_JITTER_CENTS`` (seeded) by soxr resampling. The label stays the key.
    """
    from scipy import signal

    rng = np.random.default_rng(seed)
    low, high = REAL_BASS_CUTOFF_HARMONICS
    recordings = {}
    per_key = {}
    for key_index in range(N_KEYS):
        key = key_index + LOWEST_KEY
        cutoff_harmonics = float(rng.uniform(low, high))
        cents = keyboard.stretch_cents(key, STRETCH_CENTS, STRETCH_CENTS) + float(
            rng.uniform(-STRETCH_JITTER_CENTS, STRETCH_JITTER_CENTS)
        )
        taper = max(0.0, (REAL_BASS_TOP_KEY - key) / (REAL_BASS_TOP_KEY - LOWEST_KEY))
        multiple = 1.0 + (cutoff_harmonics - 1.0) * taper
        cutoff_hz = keyboard.key_frequency(key) * multiple if taper > 0 else None
        sos = (
            signal.butter(REAL_BASS_FILTER_ORDER, cutoff_hz, btype="highpass", fs=bank.sample_rate, output="sos")
            if cutoff_hz
            else None
        )
        per_key[keyboard.note_name(key)] = {
            "cents": round(cents, 2),
            "highpass_harmonics": round(multiple, 3) if cutoff_hz else None,
        }
        for layer in range(bank.n_layers):
            if bank.lengths[key_index, layer] == 0:
                continue
            recording = bank.recording(key, layer).astype(np.float64)
            if sos is not None:
                before = attack_rms(recording)
                recording = signal.sosfilt(sos, recording)
                after = attack_rms(recording)
                if after > 0.0:
                    recording *= before / after
            recording = soxr.resample(recording, bank.sample_rate * 2.0 ** (cents / 1200.0), bank.sample_rate)
            recordings[(key, layer)] = recording.astype(np.float32)
    attrs = {
        **bank.attrs,
        "real_bass": {
            "from": bank.name,
            "seed": seed,
            "top_key": keyboard.note_name(REAL_BASS_TOP_KEY),
            "cutoff_harmonics_at_a0": list(REAL_BASS_CUTOFF_HARMONICS),
            "filter_order": REAL_BASS_FILTER_ORDER,
            "stretch_cents": STRETCH_CENTS,
            "jitter_cents": STRETCH_JITTER_CENTS,
            "keys": per_key,
        },
    }
    audio, offsets, lengths = pack_recordings(recordings, bank.n_layers)
    return Bank(
        name=name,
        sample_rate=bank.sample_rate,
        layer_velocities=bank.layer_velocities.copy(),
        audio=audio,
        offsets=offsets,
        lengths=lengths,
        source=f"{bank.source} (real-bass variant of {bank.name})",
        attrs=attrs,
    )
