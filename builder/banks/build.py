"""Building a bank from any source, and finding or building a bank by name: the stage ``builder bank`` runs.

A built-in bank file that exists is used as is by ``ensure_bank`` even if ``bank`` params changed since it was
built (its ``attrs["settings"]`` say what it was built with); DVC tracks those params.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from builder.banks import registry
from builder.banks.format import FORMAT_VERSION, Bank, describe_bank, file_format_version, write_bank
from builder.banks.layers import MAX_LAYERS, layer_velocities
from builder.banks.processing import (
    ATTACK_RMS_SECONDS,
    ENVELOPE_BLOCK_SECONDS,
    ONSET_FRACTION,
    PRE_ONSET_SECONDS,
    RecordingGrid,
    attack_rms,
    pack_recordings,
)
from builder.banks.sources import ivy, named, soundfont
from builder.banks.sources.real_bass import real_bass_variant
from pianoscribe import keyboard
from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY, N_KEYS, SAMPLE_RATE
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from pianoscribe.versions import library_versions


def default_name(source: str) -> str:
    """The built-in name, or the stem of the folder / zip / .sf2, made safe for a file name."""
    if registry.is_builtin(source):
        return source
    stem = Path(source.rstrip("/\\")).stem or "bank"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "bank"


def bank_path(name_or_path: str | Path, data_dir: Path) -> Path:
    """``data_dir/banks/NAME.h5`` for a bare name; an ``.h5`` path or anything with a folder part as given."""
    text = str(name_or_path)
    if text.endswith(".h5") or "/" in text or "\\" in text:
        return Path(text)
    return Path(data_dir) / "banks" / f"{text}.h5"


def ensure_bank(name_or_path: str | Path, data_dir: Path, settings: dict, console: Any) -> Path:
    """Path of a usable bank file; a missing (or older-format) built-in is built first, saying so.

    ``console`` is anything with a ``print(str)`` (a rich Console). A missing non-built-in bank is a
    UserError that says how to build it.
    """
    path = bank_path(name_or_path, data_dir)
    name = str(name_or_path)
    stale = path.exists() and file_format_version(path) != FORMAT_VERSION
    if path.exists() and not stale:
        return path
    if not registry.is_builtin(name):
        if stale:
            raise UserError(
                f"{path}: bank format version {file_format_version(path)}, this build reads "
                f"{FORMAT_VERSION}; rebuild it with `builder bank`"
            )
        raise UserError(
            f"{path}: no such bank; build it with `builder bank SOURCE --name {path.stem}` "
            f"(built-ins: {', '.join(registry.BUILTIN_BANKS)})"
        )
    reason = "is from an older format" if stale else "is missing"
    console.print(f"bank {name}: {path} {reason}, building it from the built-in source")
    built = build_bank(name, name=name, settings=settings, cache_dir=Path(data_dir) / "cache")
    write_bank(built, path)
    console.print(f"wrote {path}: {describe_bank(built)}")
    return path


def build_bank(
    source: str,
    name: str | None = None,
    settings: dict | None = None,
    cache_dir: Path = Path("data/cache"),
    keys: Iterable[int] | None = None,
) -> Bank:
    """Build a bank from a built-in name, an Ivy folder, a note-named folder or zip, or a .sf2 file.

    ``keys`` (MIDI numbers) limits the recordings read or rendered, for quick tests; the other keys get
    length 0 and ``attrs["keys"]`` lists the ones present.
    """
    settings = check_settings({**defaults("bank"), **(settings or {})})
    name = name or default_name(source)
    wanted_keys = check_keys(keys)
    cache_dir = Path(cache_dir)
    builtin = registry.builtin(source)
    if builtin is not None and builtin.real_bass_of is not None:
        base = builtin.real_bass_of
        return real_bass_variant(build_bank(base, base, settings, cache_dir, wanted_keys), name)
    if builtin is not None and builtin.recordings is not None:
        recordings, extra, source_text = builtin.recordings(settings, wanted_keys, cache_dir)
    else:
        recordings, extra, source_text = _path_recordings(source, settings, wanted_keys)
    return assemble(name, source_text, recordings, settings, extra, wanted_keys)


def _path_recordings(source: str, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict, str]:
    """Recordings of a user's source: an Ivy Audio folder, a note-named folder or zip, or a SoundFont."""
    path = Path(source)
    if not path.exists():
        raise UserError(
            f"{source}: no such file or folder, and not a built-in bank ({', '.join(registry.BUILTIN_BANKS)})"
        )
    if path.is_dir() and ivy.is_ivy_folder(path):
        recordings, extra = ivy.ivy_recordings(path, settings, wanted_keys)
    elif path.is_dir():
        recordings, extra = named.named_folder_recordings(path, settings, wanted_keys)
    elif path.suffix.lower() == ".sf2":
        recordings, extra = soundfont.soundfont_recordings(path.read_bytes(), str(path), settings, wanted_keys)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as samples_zip:
            recordings, extra = named.named_zip_recordings(samples_zip, str(path), settings, wanted_keys)
    else:
        raise UserError(f"{source}: not a bank source (expected a folder, a .zip of recordings or a .sf2)")
    return recordings, extra, str(path.resolve())


def check_settings(settings: dict) -> dict:
    """Validate the ``bank`` params section at the edge (one message naming the parameter)."""
    checks = {
        "layers": (lambda value: isinstance(value, int) and 1 <= value <= MAX_LAYERS, f"an integer 1..{MAX_LAYERS}"),
        "max_seconds": (lambda value: 0.05 <= float(value) <= 60.0, "seconds in 0.05..60"),
        "tail_db": (lambda value: -200.0 <= float(value) < 0.0, "a negative dB value"),
        "fade_seconds": (
            lambda value: 0.0 <= float(value) < float(settings["max_seconds"]),
            "seconds >= 0 and below max_seconds",
        ),
        "normalize_rms": (lambda value: 0.0 < float(value) <= 1.0, "a value in (0, 1]"),
    }
    for key, (is_valid, expected) in checks.items():
        try:
            valid = is_valid(settings[key])
        except (TypeError, ValueError, KeyError):
            valid = False
        if not valid:
            raise UserError(f"params bank.{key}: {settings.get(key)!r} is not {expected}")
    return settings


def check_keys(keys: Iterable[int] | None) -> list[int]:
    if keys is None:
        return list(range(LOWEST_KEY, HIGHEST_KEY + 1))
    wanted = sorted({int(key) for key in keys})
    outside = [key for key in wanted if not keyboard.is_piano_key(key)]
    if outside or not wanted:
        raise UserError(f"keys: {outside or 'none'} not in 21..108")
    return wanted


def assemble(
    name: str, source: str, recordings: RecordingGrid, settings: dict, extra: dict, wanted_keys: list[int]
) -> Bank:
    """Normalize loudness with one gain and pack the grid into the contiguous engine layout."""
    n_layers = 1 + max(layer for _, layer in recordings)
    top_rms = [attack_rms(audio) for (key, layer), audio in recordings.items() if layer == n_layers - 1]
    median_rms = float(np.median(top_rms))
    if median_rms <= 0.0:
        raise UserError(f"{source}: the loudest layer is silent")
    gain = float(settings["normalize_rms"]) / median_rms
    all_audio, offsets, lengths = pack_recordings(recordings, n_layers)
    all_audio *= np.float32(gain)
    attrs = {
        "settings": dict(settings),
        "normalize_gain": gain,
        "attack_rms_seconds": ATTACK_RMS_SECONDS,
        "versions": library_versions("numpy", "scipy", "soxr", "soundfile", "tinysoundfont"),
        "processing": (
            f"mono mean, soxr to {SAMPLE_RATE} Hz, start {PRE_ONSET_SECONDS * 1000:g} ms before the "
            f"first sample above {ONSET_FRACTION:g} x peak, cap {settings['max_seconds']:g} s, cut "
            f"where the {ENVELOPE_BLOCK_SECONDS * 1000:g} ms peak envelope falls "
            f"{abs(float(settings['tail_db'])):g} dB below the peak, linear fade of "
            f"{settings['fade_seconds']:g} s, one gain so the top layer's median attack RMS is "
            f"{settings['normalize_rms']:g}"
        ),
        **extra,
    }
    if len(wanted_keys) < N_KEYS:
        attrs["keys"] = wanted_keys
    return Bank(
        name=name,
        sample_rate=SAMPLE_RATE,
        layer_velocities=layer_velocities(n_layers),
        audio=all_audio,
        offsets=offsets,
        lengths=lengths,
        source=source,
        attrs=attrs,
    )
