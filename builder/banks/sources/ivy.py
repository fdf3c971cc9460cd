"""Ivy Audio "Piano in 162" folders (detected by their file names ``NN-PedalOff<Dynamic><1|2>Close.wav``).

Ten recorded layers, ordered by loudness Pianissimo1, Pianissimo2, Piano1, Piano2, MezzoPiano1, MezzoPiano2,
MezzoForte1, MezzoForte2, Forte1, Forte2. All 880 files are required; ``bank.layers`` does not apply (the
layers are the recorded ones).
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from builder.banks.processing import RecordingGrid, Unreadable, listing, read_audio, trim_tail
from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY
from pianoscribe.errors import UserError

IVY_DYNAMICS = ("Pianissimo", "Piano", "MezzoPiano", "MezzoForte", "Forte")  # softest first
IVY_LAYERS = tuple((dynamic, take) for dynamic in IVY_DYNAMICS for take in (1, 2))
IVY_FILE_PATTERN = re.compile(
    r"^(\d\d)-PedalOff(Pianissimo|Piano|MezzoPiano|MezzoForte|Forte)([12])Close\.wav$", re.IGNORECASE
)


def is_ivy_folder(folder: Path) -> bool:
    return any(IVY_FILE_PATTERN.match(entry.name) for entry in folder.iterdir())


def ivy_file_name(key: int, layer: int) -> str:
    """File name of MIDI ``key`` at Ivy layer ``layer`` (0 = Pianissimo1 .. 9 = Forte2)."""
    dynamic, take = IVY_LAYERS[layer]
    return f"{key - LOWEST_KEY + 1:02d}-PedalOff{dynamic}{take}Close.wav"


def ivy_recordings(folder: Path, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    """All 880 files must exist (one error lists the missing ones); the wanted keys are read."""
    present = {entry.name.lower(): entry for entry in folder.iterdir()}
    expected = [
        (key, layer, ivy_file_name(key, layer))
        for key in range(LOWEST_KEY, HIGHEST_KEY + 1)
        for layer in range(len(IVY_LAYERS))
    ]
    missing = [file_name for _, _, file_name in expected if file_name.lower() not in present]
    if missing:
        raise UserError(
            f"{folder}: Ivy Audio folder is missing {len(missing)} of {len(expected)} files: {listing(missing)}"
        )
    recordings: RecordingGrid = {}
    unreadable = []
    for key, layer, file_name in expected:
        if key not in wanted_keys:
            continue
        path = present[file_name.lower()]
        try:
            recordings[(key, layer)] = trim_tail(read_audio(partial(str, path), file_name, settings), settings)
        except Unreadable:
            unreadable.append(file_name)
    if unreadable:
        raise UserError(f"{folder}: {len(unreadable)} Ivy Audio files are not readable audio: {listing(unreadable)}")
    return recordings, {
        "layer_sources": [f"{dynamic}{take}" for dynamic, take in IVY_LAYERS],
        "derivation": "recorded: 10 Ivy Audio layers (5 dynamics x 2 takes), ordered by loudness; "
        "bank.layers does not apply",
    }
