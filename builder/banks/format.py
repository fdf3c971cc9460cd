"""The bank file (HDF5, ``data/banks/NAME.h5``) and the in-memory ``Bank``: write, read, check, describe.

Why one contiguous ``audio`` array with ``offsets``/``lengths``: the native engine keeps the whole bank in
memory and reads any (key, layer) recording as a slice, with no per-note allocation. Identical banks give
identical bytes (no timestamps, fixed order): banks are hashed into the dataset's provenance.

Storage: float32 (about 600 MB for 88 x 10 x 4 s). Measured with ``benchmarks/bank_storage.py``: int16 with one
scale per bank puts the quantization noise above the kept -70 dB tail in 22 % of the steinway recordings (worst
-43 dB re the recording's own peak: a soft, derived C8), so it is not lossless enough; int16 with one scale per
recording would give -101 dB everywhere at half the size (a possible format version 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from builder.banks.processing import ATTACK_RMS_SECONDS, attack_rms
from builder.hdf5 import DAMAGED, damaged, holds, open_for_reading, read_array, read_attribute
from pianoscribe.atomic import atomic_path
from pianoscribe.constants import LOWEST_KEY, N_KEYS, SAMPLE_RATE
from pianoscribe.errors import UserError

FORMAT_VERSION = 1
_BANK_DATASETS = ("audio", "offsets", "lengths", "layer_velocities")
_BANK_ATTRIBUTES = ("name", "source", "sample_rate")


@dataclass
class Bank:
    """A loaded bank (see ARCHITECTURE.md "Bank"). ``lengths == 0`` marks a key left out (test banks only)."""

    name: str
    sample_rate: int
    layer_velocities: np.ndarray  # [L] float32, nominal MIDI velocity of each layer, ascending
    audio: np.ndarray  # [total] float32, all recordings concatenated
    offsets: np.ndarray  # [88, L] int64
    lengths: np.ndarray  # [88, L] int64
    source: str
    attrs: dict = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.layer_velocities.shape[0])

    def recording(self, key: int, layer: int) -> np.ndarray:
        """The samples of MIDI ``key`` at ``layer`` (a view into ``audio``)."""
        start = int(self.offsets[key - LOWEST_KEY, layer])
        return self.audio[start : start + int(self.lengths[key - LOWEST_KEY, layer])]


def is_bank_file(path: Path) -> bool:
    """Whether ``path`` is a bank file this project wrote (the only kind ``write_bank`` may replace)."""
    return holds(path, "bank", ("audio", "offsets"))


def write_bank(bank: Bank, path: Path | str) -> None:
    """Write atomically; identical banks give identical bytes (no timestamps, fixed order)."""
    path = Path(path)
    check_layout(bank, str(path))
    n_layers = bank.n_layers
    peak = np.zeros((N_KEYS, n_layers), dtype=np.float32)
    rms = np.zeros((N_KEYS, n_layers), dtype=np.float32)
    for key_index in range(N_KEYS):
        for layer in range(n_layers):
            recording = bank.recording(key_index + LOWEST_KEY, layer)
            if recording.size:
                peak[key_index, layer] = np.abs(recording).max()
                rms[key_index, layer] = attack_rms(recording)
    with (
        atomic_path(path, replaceable=is_bank_file, kind="a bank file") as temporary,
        h5py.File(temporary, "w", track_order=False) as bank_file,
    ):
        datasets = {
            "audio": bank.audio.astype(np.float32, copy=False),
            "offsets": bank.offsets.astype(np.int64),
            "lengths": bank.lengths.astype(np.int64),
            "peak": peak,
            "rms": rms,
            "layer_velocities": bank.layer_velocities.astype(np.float32),
        }
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
    """Load a bank file, checking that it is one, of this format version, with a consistent layout.

    Anything wrong with the file, down to a damaged HDF5 structure, is one ``UserError`` naming it.
    """
    path = Path(path)
    try:
        with open_for_reading(path, "bank") as bank_file:
            bank = _bank_from_file(bank_file, path)
    except DAMAGED as error:
        raise damaged(path, "bank", error) from error
    check_layout(bank, str(path))
    return bank


def _bank_from_file(bank_file: h5py.File, path: Path) -> Bank:
    """The bank in an open file; h5py's own exceptions (:data:`builder.hdf5.DAMAGED`) mean damage."""
    if "format_version" not in bank_file.attrs or "audio" not in bank_file:
        raise UserError(f"{path}: not a bank (no format_version / audio)")
    version = int(read_attribute(bank_file, "format_version", "integer"))
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path}: bank format version {version}, this build reads {FORMAT_VERSION}; rebuild it with `builder bank`"
        )
    missing = [name for name in _BANK_DATASETS if name not in bank_file]
    missing += [name for name in _BANK_ATTRIBUTES if name not in bank_file.attrs]
    if missing:
        raise UserError(f"{path}: not a complete bank (no {', '.join(missing)})")
    size = path.stat().st_size
    return Bank(
        name=str(read_attribute(bank_file, "name", "string")),
        sample_rate=int(read_attribute(bank_file, "sample_rate", "integer")),
        layer_velocities=read_array(bank_file, "layer_velocities", "float", size).astype(np.float32),
        audio=read_array(bank_file, "audio", "float", size).astype(np.float32, copy=False),
        offsets=read_array(bank_file, "offsets", "integer", size).astype(np.int64),
        lengths=read_array(bank_file, "lengths", "integer", size).astype(np.int64),
        source=str(read_attribute(bank_file, "source", "string")),
        attrs=_attrs_from_json(bank_file, path),
    )


def _attrs_from_json(bank_file: h5py.File, path: Path) -> dict:
    """The ``attrs_json`` attribute as a dict (``{}`` when absent, as in the first banks written)."""
    if "attrs_json" not in bank_file.attrs:
        return {}
    text = str(read_attribute(bank_file, "attrs_json", "string"))
    try:
        attrs = json.loads(text)
    except RecursionError:
        attrs = None
    if not isinstance(attrs, dict):
        raise UserError(f"{path}: damaged bank file (attrs_json is not a JSON object)")
    return attrs


def file_format_version(path: Path) -> int | None:
    """The format version a bank file states; None when it states none or cannot be read."""
    try:
        with open_for_reading(path, "bank") as bank_file:
            return int(read_attribute(bank_file, "format_version", "integer"))
    except (UserError, *DAMAGED):
        return None


def check_layout(bank: Bank, label: str) -> None:
    n_layers = bank.layer_velocities.shape[0]
    problem = None
    if bank.sample_rate != SAMPLE_RATE:
        problem = f"sample rate {bank.sample_rate}, expected {SAMPLE_RATE}"
    elif bank.audio.ndim != 1 or bank.audio.dtype != np.float32:
        problem = "audio must be one float32 array"
    # a float64 sum is finite exactly when every sample is (no temporary array the size of the bank)
    elif not (np.isfinite(bank.audio.sum(dtype=np.float64)) and np.isfinite(bank.layer_velocities).all()):
        problem = "audio and layer velocities must be finite numbers"
    elif n_layers < 1 or bank.offsets.shape != (N_KEYS, n_layers) or bank.lengths.shape != (N_KEYS, n_layers):
        problem = f"offsets/lengths must be [{N_KEYS}, {n_layers}]"
    elif (
        np.any(np.diff(bank.layer_velocities) <= 0)
        or bank.layer_velocities.min() < 1
        or bank.layer_velocities.max() > 127
    ):
        problem = "layer velocities must ascend within 1..127"
    elif (
        np.any(bank.offsets < 0)
        or np.any(bank.lengths < 0)
        or np.any(bank.lengths > bank.audio.shape[0] - bank.offsets)  # not offsets + lengths: it can wrap around
    ):
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
    return (
        f"{keys_present} keys{filled_text} x {bank.n_layers} layers, {seconds:.0f} s of audio, "
        f"{megabytes:.0f} MB; source {bank.source}"
    )
