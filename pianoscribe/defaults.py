"""The built-in value of every parameter, one section per stage: the only place defaults are written.

``params.yaml`` (what DVC tracks and a user edits) holds the same values with a line of help each;
``tests/test_defaults.py`` proves section by section that it matches. The CLIs read a section with
:func:`pianoscribe.params.section`, which merges the file's values over these.
"""

from __future__ import annotations

import copy
from typing import Any

from pianoscribe.constants import FOLK_COLLECTIONS, SCORE_COLLECTIONS

_DEFAULTS: dict[str, dict[str, Any]] = {
    "bank": {
        "layers": 10,  # velocity layers rendered or derived per key
        "max_seconds": 4.0,  # longest kept recording
        "tail_db": -70.0,  # cut where the envelope falls this far below the peak
        "fade_seconds": 0.05,  # linear fade at the cut
        "normalize_rms": 0.1,  # the top layer's median attack RMS after normalization
    },
    "corpus": {
        "procedural": {"pieces": 300, "seconds": 60.0, "seed": 0},
        "pianistic": {"pieces": 300, "seconds": 60.0, "seed": 0},  # generated piano writing (docs/dataset.md)
        "scores": {"max_pieces": 0, "max_pieces_per_collection": 30},  # music21 collections (docs/dataset.md)
        "chorales": {"max_pieces": 0},  # 0 = all; a small number makes a quick corpus for pipeline tests
    },
    "synth": {
        "n": 1000000,  # FFT slices in total, train + test
        "seed": 0,
        "threads": 0,  # 0 = all cores
        "dask": {"address": None},  # None: this process; local:N or a scheduler address (docs/scaling.md)
        "frames_per_segment": 16,  # consecutive buffers per random position
        "test_fraction": 0.15,  # share of pieces (and of slices) on the test side
        "corpora": ["chorales", "procedural", "pianistic", "scores"],
        "train_banks": ["timgm6mb", "merlin", "modal", "modal-1", "modal-2", "modal-3"],
        "test_banks": ["steinway", "musescore"],
        "window": "hann",  # hann | none
        "long_fft_bins": 192,  # > 0: also store fft_long_magnitude, this many 10.8 Hz bins of a 4096-sample window
        "release_seconds": 0.08,  # a note-off fades over this time
        "velocity_exponent": 1.0,  # gain within a layer = (velocity / layer velocity) ** exponent
        "bank_precision": "int16",  # int16 | float32: how the engine holds banks
        "augment": {
            "noise_db": -70.0,
            "gain_db": 6.0,
            "tilt_db_per_octave": 1.5,
            "tilt_pivot_hz": 1000.0,
            "detune_cents": 15.0,
            "test": False,
        },
        "storage": {
            "fft_dtype": "float16",
            "chunk_rows": 4096,
            "shard_rows": 65536,
            "codec": "zstd",
            "level": 3,
            "fft_codec": "blosc-lz4",
            "fft_level": 5,
            "shuffle": "bitshuffle",
            "writers": 2,
        },
    },
    "fit": {
        "arch": "context",
        "epochs": 3,  # with 16 harmonic filters and trainer fit-offline, make run stays within its budget
        "batch_size": 256,
        "learning_rate": 0.001,
        "lr_schedule": "cosine",
        "context_frames": 5,
        "lookahead_frames": 1,
        "shuffle_buffer": 16384,
        "seed": 0,
        "strategy": "default",  # default (one device) | mirrored (every visible GPU; docs/scaling.md)
        "loss_weights": {"active": 1.0, "onset": 1.0, "energy": 0.5},
        "positive_weight": {"active": 2.0, "onset": 10.0},
        "onset_target_frames": 1,  # 2: a note's onset is a target in its buffer and the next (heard there too)
        "compression": 100.0,
        "steps_per_epoch": 1200,
        "val_steps": 0,
        "stats_rows": 65536,
        "energy_scale_percentile": 99.0,
        "min_note_seconds": 0.05,
        "reference": {"dropout": 0.5},
        "context": {
            "freq_filters": [8],
            "freq_kernel": 5,
            "freq_pool": 2,
            "frame_units": 256,
            "context_units": 256,
            "dropout": 0.2,
            "envelope_db": 12.0,
            "bass_cut_db": 30.0,
            "harmonics": 8,
            "harmonic_divisions": [1, 2, 3],
            "harmonic_filters": 16,  # 8 until issue 13: 16 in 3 epochs beat 8 in 4 (docs/training.md)
            "long_fft": True,  # also read the store's fft_long_magnitude (synth.long_fft_bins > 0): the bass
        },
    },
    "offline": {  # the offline model: a pass over the streaming model's heads, seconds ahead and back
        "pieces": 240,  # training pieces rendered, spread over the store's corpora (train split only)
        "seconds": 30.0,  # of each piece, from a random start
        "seed": 0,
        "width": 48,  # channels of every layer of the pass (32 until issue 13: 48 in 8 epochs measured better)
        "key_span": 24,  # keys seen on each side (partials of the notes 1-2 octaves below and above)
        "streaming_features": True,  # also read the streaming model's per-key harmonic features, not only its heads
        "time_kernel": 5,  # frames per temporal convolution ...
        "dilations": [1, 5, 25],  # ... at these dilations: sees 2 x (1 + 5 + 25) = 62 frames (1.4 s) either side
        "epochs": 8,  # 4 until issue 13 (docs/training.md "A wider pass, trained longer")
        "steps_per_epoch": 150,
        "batch_windows": 8,  # windows per batch ...
        "window_frames": 192,  # ... of this many frames (4.5 s)
        "learning_rate": 0.003,  # cosine-decayed to 0 over all steps
        "onset_scale_min": 0.3,  # each window's onset head x uniform(this, 1): weaker onsets, as on unheard pianos
        "positive_weight": {"active": 2.0, "onset": 10.0},  # as fit.positive_weight: calibrated like the streaming
    },
    "decode": {  # how `trainer infer` and `trainer evaluate` turn probabilities into notes
        "onset_threshold": 0.9,  # null: the value stored in the model file
        "frame_threshold": 0.25,
        "min_note_seconds": 0.05,
        "onset_neighbour_weight": 0.75,  # an onset peak counts this share of its larger neighbouring frame
        "offline": {  # the offline model's own (null: as above)
            "onset_threshold": 0.97,
            "frame_threshold": None,
            "onset_neighbour_weight": 0.5,
        },
    },
    "evaluate": {
        "pianos": ["steinway", "musescore"],  # every piece through each: pianos no training bank comes from
        "kinds": [  # kinds of music: piece-id prefixes of the store's test split
            {"name": "chorales", "prefixes": ["chorales/"]},
            {"name": "pianistic", "prefixes": ["pianistic/"]},
            {"name": "scores", "prefixes": [f"scores/{name}/" for name in SCORE_COLLECTIONS]},
            {"name": "folk", "prefixes": [f"scores/{name}/" for name in FOLK_COLLECTIONS]},
        ],
        "pieces_per_kind": 4,  # per kind: this many to tune on, then this many to report
        "max_seconds": 30.0,  # of each piece
    },
}

SECTIONS = tuple(_DEFAULTS)


def defaults(section: str) -> dict[str, Any]:
    """A fresh copy of one section's defaults (callers may change it)."""
    if section not in _DEFAULTS:
        raise KeyError(f"no params section {section!r} (sections: {', '.join(SECTIONS)})")
    return copy.deepcopy(_DEFAULTS[section])
