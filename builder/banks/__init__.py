"""Sample banks: 88 keys x L velocity layers of single-note recordings, mono 44.1 kHz float32, one HDF5 file.

The layers of this package, each importing only those above it:

- ``processing``: what every recording goes through (mono, 44.1 kHz, attack trim, tail cut, attack RMS), packing;
- ``layers``: which layer plays a velocity, softer layers derived from one loud recording;
- ``format``: the ``Bank`` and its file;
- ``sources/``: one module per kind of source (Ivy Audio, note-named files, SoundFonts, modal pianos, real-bass
  variants, wheel downloads), each returning recordings;
- ``registry``: the built-in banks by name; ``build``: any source -> ``Bank``, ``ensure_bank`` by name.

Everything a caller needs is importable from here.
"""

from builder.banks.build import bank_path, build_bank, check_settings, default_name, ensure_bank
from builder.banks.format import FORMAT_VERSION, Bank, describe_bank, is_bank_file, read_bank, write_bank
from builder.banks.layers import layer_for_velocity, layer_velocities
from builder.banks.registry import BUILTIN_BANKS, is_builtin

__all__ = [
    "BUILTIN_BANKS",
    "FORMAT_VERSION",
    "Bank",
    "bank_path",
    "build_bank",
    "check_settings",
    "default_name",
    "describe_bank",
    "ensure_bank",
    "is_bank_file",
    "is_builtin",
    "layer_for_velocity",
    "layer_velocities",
    "read_bank",
    "write_bank",
]
