"""Note corpora: pieces of (onset, offset, key, velocity) notes, read from MIDI, midi-json or built-ins, in one file.

The layers of this package: ``notes`` (the note model and its cleaning rules) <- ``sources/`` (one module per
kind of source) and ``file`` (the HDF5 file) <- ``build`` (sources -> corpus, built-ins by name).
Everything a caller needs is importable from here.
"""

from builder.corpus.build import BUILTIN_CORPORA, build_corpus, default_name, ensure_corpus, write_midi_json_folder
from builder.corpus.file import FORMAT_VERSION, corpus_path, describe_corpus, is_corpus_file, read_corpus, write_corpus
from builder.corpus.notes import NOTE_DTYPE, Corpus, DropCounts, Piece, clean_notes, merge_unisons, stable_seed

__all__ = [
    "BUILTIN_CORPORA",
    "FORMAT_VERSION",
    "NOTE_DTYPE",
    "Corpus",
    "DropCounts",
    "Piece",
    "build_corpus",
    "clean_notes",
    "corpus_path",
    "default_name",
    "describe_corpus",
    "ensure_corpus",
    "is_corpus_file",
    "merge_unisons",
    "read_corpus",
    "stable_seed",
    "write_corpus",
    "write_midi_json_folder",
]
