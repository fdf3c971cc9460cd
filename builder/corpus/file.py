"""The corpus file (HDF5, ``data/corpus/NAME.h5``): every piece's notes in one array, the ids, the attrs.

The corpus file is the synthesizer's only view of music. No timestamps and a fixed layout, so identical
content gives identical bytes (corpora are hashed into the dataset's provenance).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from builder.corpus.notes import NOTE_DTYPE, Corpus, Piece
from builder.hdf5 import DAMAGED, damaged, holds, open_for_reading, read_attribute
from pianoscribe.atomic import atomic_path
from pianoscribe.errors import UserError

FORMAT_VERSION = 1


def is_corpus_file(path: Path) -> bool:
    """Whether ``path`` is a corpus file this project wrote (the only kind ``write_corpus`` may replace)."""
    return holds(path, "corpus", ("notes", "piece_id"))


def write_corpus(corpus: Corpus, path: Path | str) -> None:
    """Write one HDF5 file: all notes concatenated, where each piece starts, the ids, the attrs as JSON.

    No timestamps and a fixed layout, so identical content gives identical bytes (corpora are hashed
    into the dataset's provenance).
    """
    lengths = np.array([len(piece.notes) for piece in corpus.pieces], dtype=np.int64)
    piece_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    notes = (
        np.concatenate([piece.notes for piece in corpus.pieces]).astype(NOTE_DTYPE, copy=False)
        if corpus.pieces
        else np.zeros(0, dtype=NOTE_DTYPE)
    )
    compressed = (
        {"chunks": (min(len(notes), 1 << 16),), "compression": "gzip", "compression_opts": 4, "shuffle": True}
        if len(notes)
        else {}
    )
    with (
        atomic_path(path, suffix=".h5", replaceable=is_corpus_file, kind="a corpus file") as temporary,
        h5py.File(temporary, "w") as file,
    ):
        file.create_dataset("notes", data=notes, track_times=False, **compressed)
        file.create_dataset("piece_start", data=piece_start, track_times=False)
        file.create_dataset(
            "piece_id",
            data=np.array([piece.piece_id for piece in corpus.pieces], dtype=object),
            dtype=h5py.string_dtype("utf-8"),
            track_times=False,
        )
        file.attrs["format_version"] = FORMAT_VERSION
        file.attrs["name"] = corpus.name
        file.attrs["attrs"] = json.dumps(corpus.attrs, sort_keys=True)


def read_corpus(path: Path | str) -> Corpus:
    """Read a corpus file; ``UserError`` naming the file if it is missing or not a corpus."""
    path = Path(path)
    with open_for_reading(path, "corpus") as file:
        try:
            notes, piece_start, piece_ids, name, attrs = _corpus_contents(path, file)
        except DAMAGED as error:
            raise damaged(path, "corpus", error) from error
    if len(piece_start) != len(piece_ids) + 1 or piece_start[-1] != len(notes):
        raise UserError(f"{path}: piece_start does not match the notes and piece ids")
    pieces = [
        Piece(piece_id=piece_id, notes=notes[piece_start[index] : piece_start[index + 1]])
        for index, piece_id in enumerate(piece_ids)
    ]
    return Corpus(name=name, pieces=pieces, attrs=attrs)


def _corpus_contents(path: Path, file: h5py.File) -> tuple[np.ndarray, np.ndarray, list[str], str, dict]:
    missing = [name for name in ("notes", "piece_start", "piece_id") if name not in file]
    if missing or "format_version" not in file.attrs:
        raise UserError(f"{path}: not a corpus file (missing {', '.join(missing) or 'format_version'})")
    if int(file.attrs["format_version"]) != FORMAT_VERSION:
        raise UserError(
            f"{path}: corpus format {file.attrs['format_version']}, this version reads "
            f"{FORMAT_VERSION}; rebuild it with `builder corpus`"
        )
    if file["notes"].dtype != NOTE_DTYPE:
        raise UserError(f"{path}: notes have dtype {file['notes'].dtype}, expected {NOTE_DTYPE}")
    notes = file["notes"][()]
    piece_start = file["piece_start"][()]
    piece_ids = [value.decode("utf-8") if isinstance(value, bytes) else str(value) for value in file["piece_id"][()]]
    name = str(read_attribute(file, "name", "string"))
    attrs = json.loads(read_attribute(file, "attrs", "string"))
    return notes, piece_start, piece_ids, name, attrs


def corpus_path(name_or_path: str | Path, data_dir: Path | str) -> Path:
    """Where a corpus lives: a path as given (ending in .h5 or with a folder in it), else data/corpus/NAME.h5.

    Names may contain dots (``bwv1.6``), so only ``.h5`` marks a file name.
    """
    text = str(name_or_path)
    if text.lower().endswith(".h5") or "/" in text or "\\" in text:
        return Path(text)
    return Path(data_dir) / "corpus" / f"{text}.h5"


def describe_corpus(corpus: Corpus) -> str:
    """One line: pieces, notes, seconds of music, key range, dropped notes and skipped files."""
    note_count = sum(len(piece.notes) for piece in corpus.pieces)
    seconds = sum(float(piece.notes["offset"].max()) for piece in corpus.pieces if len(piece.notes))
    keys = [piece.notes["key"] for piece in corpus.pieces if len(piece.notes)]
    key_range = f"keys {min(int(k.min()) for k in keys)}..{max(int(k.max()) for k in keys)}" if keys else "no keys"
    dropped = corpus.attrs.get("dropped", {})
    text = (
        f"{len(corpus.pieces)} pieces, {note_count} notes, {seconds:.0f} s of music ({seconds / 3600:.2f} h), "
        f"{key_range}; dropped {dropped.get('out_of_range', 0)} out-of-range and "
        f"{dropped.get('zero_length', 0)} zero-length notes"
    )
    skipped = corpus.attrs.get("skipped_files", [])
    if skipped:
        text += f"; skipped {len(skipped)} files (unreadable or without piano notes)"
    return text
