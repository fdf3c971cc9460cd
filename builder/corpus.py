"""Note corpora: pieces of (onset, offset, key, velocity) notes, read from MIDI, midi-json or built-ins, in one file.

The corpus file is the synthesizer's only view of music, so every source is reduced here to one array layout
(``NOTE_DTYPE``), one cleaning rule (keys 21..108, positive length, counted when dropped) and one stable piece id.
The readers for midi-json (:mod:`builder.midi_json`), the music21 chorales (:mod:`builder.chorales`) and the
procedural generator (:mod:`builder.procedural`) live in their own modules; MIDI files are read here.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from builder.atomic import atomic_path
from builder.errors import UserError
from builder.versions import library_versions

NOTE_DTYPE = np.dtype([("onset", "<f8"), ("offset", "<f8"), ("key", "u1"), ("velocity", "u1")])
LOWEST_KEY = 21
HIGHEST_KEY = 108
FORMAT_VERSION = 1
BUILTIN_CORPORA = {
    "chorales": "the Bach chorales of the music21 corpus (its other pieces are reserved for evaluation)",
    "procedural": "generated chords, scales, arpeggios and clusters over all 88 keys (params: corpus.procedural)",
}
MIDI_SUFFIXES = (".mid", ".midi")
MIDI_JSON_SUFFIX = ".json"
SUSTAIN_CONTROLLER = 64
SUSTAIN_DOWN_VALUE = 64

DEFAULT_SETTINGS: dict[str, Any] = {
    "procedural": {"pieces": 300, "seconds": 60.0, "seed": 0},
    "chorales": {"max_pieces": 0},  # 0 = all; a small number makes a quick corpus for pipeline tests
}

Warn = Callable[[str], None]


@dataclass
class Piece:
    """One piece: its stable id (the split and the dataset refer to it) and its notes sorted by (onset, key)."""

    piece_id: str
    notes: np.ndarray


@dataclass
class Corpus:
    """A named list of pieces; ``attrs`` records where they came from and what was dropped on the way."""

    name: str
    pieces: list[Piece]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DropCounts:
    """Notes removed while cleaning, so a summary can say how much of a source did not make it."""

    out_of_range: int = 0
    zero_length: int = 0

    def add(self, other: DropCounts) -> None:
        self.out_of_range += other.out_of_range
        self.zero_length += other.zero_length

    def as_dict(self) -> dict[str, int]:
        return {"out_of_range": self.out_of_range, "zero_length": self.zero_length}


def clean_notes(onset: np.ndarray, offset: np.ndarray, key: np.ndarray, velocity: np.ndarray,
                dropped: DropCounts | None = None) -> np.ndarray:
    """Build a ``NOTE_DTYPE`` array: drop (and count) keys outside 21..108 and notes without length, sort.

    Velocities are clipped to 1..127 (MIDI velocity 0 means note-off, so a sounding note has at least 1).
    Sorting by (onset, key, offset, velocity) makes equal content give equal arrays whatever the source order.
    """
    onset = np.asarray(onset, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    key = np.asarray(key, dtype=np.int64)
    velocity = np.rint(np.asarray(velocity, dtype=np.float64))
    in_range = (key >= LOWEST_KEY) & (key <= HIGHEST_KEY)
    has_length = offset > onset
    if dropped is not None:
        dropped.out_of_range += int(np.count_nonzero(~in_range))
        dropped.zero_length += int(np.count_nonzero(in_range & ~has_length))
    keep = in_range & has_length
    notes = np.empty(int(np.count_nonzero(keep)), dtype=NOTE_DTYPE)
    notes["onset"] = onset[keep]
    notes["offset"] = offset[keep]
    notes["key"] = key[keep]
    notes["velocity"] = np.clip(velocity[keep], 1, 127)
    order = np.lexsort((notes["velocity"], notes["offset"], notes["key"], notes["onset"]))
    return notes[order]


def merge_unisons(notes: np.ndarray) -> np.ndarray:
    """Make notes playable on one piano: a key sounds once at a time, a re-strike ends the previous note.

    Ensemble scores (chorale voices doubling each other) and generated textures can strike a key that is
    already sounding; on a piano that is one key, so the earlier note ends where the later one starts and
    exact doublings (same key, same onset) collapse into the longest of them.
    """
    by_key = np.lexsort((notes["offset"], notes["onset"], notes["key"]))
    ordered = notes[by_key].copy()
    same_key_next = ordered["key"][1:] == ordered["key"][:-1]
    next_onset = ordered["onset"][1:]
    cut = same_key_next & (next_onset < ordered["offset"][:-1])
    ordered["offset"][:-1][cut] = next_onset[cut]
    playable = ordered[ordered["offset"] > ordered["onset"]]
    return playable[np.lexsort((playable["velocity"], playable["offset"], playable["key"], playable["onset"]))]


# --- MIDI files ---------------------------------------------------------------------------------------------

def notes_from_midi(path: Path | str, dropped: DropCounts | None = None) -> np.ndarray:
    """Notes of a MIDI file: every non-drum track and channel merged, sustain pedal (CC64) applied.

    A note released while the pedal is down (CC64 >= 64) sounds until the pedal comes up; re-striking a key
    of the same track and channel ends its previous note at the new onset, as on a piano. The pedal applies
    per track and channel (pretty_midi's instruments); a pedal on a track without notes is not seen.
    Raises ``UserError`` naming the file if it cannot be parsed.
    """
    import pretty_midi

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about meta events on non-zero tracks
            midi = pretty_midi.PrettyMIDI(str(path))
    except FileNotFoundError:
        raise
    except Exception as error:  # mido and pretty_midi raise many types for damaged files
        reason = f"{type(error).__name__}: {error}" if str(error) else f"{type(error).__name__}, damaged or truncated"
        raise UserError(f"{path}: not a readable MIDI file ({reason})") from error
    end_time = midi.get_end_time()
    parts: list[tuple[np.ndarray, ...]] = []
    for instrument in midi.instruments:
        if instrument.is_drum or not instrument.notes:
            continue
        onset = np.array([note.start for note in instrument.notes], dtype=np.float64)
        offset = np.array([note.end for note in instrument.notes], dtype=np.float64)
        key = np.array([note.pitch for note in instrument.notes], dtype=np.int64)
        velocity = np.array([note.velocity for note in instrument.notes], dtype=np.int64)
        pedal_times = np.array([change.time for change in instrument.control_changes
                                if change.number == SUSTAIN_CONTROLLER], dtype=np.float64)
        pedal_down = np.array([change.value >= SUSTAIN_DOWN_VALUE for change in instrument.control_changes
                               if change.number == SUSTAIN_CONTROLLER], dtype=bool)
        offset = sustained_offsets(offset, *pedal_intervals(pedal_times, pedal_down, end_time))
        offset = end_at_restrike(onset, offset, key)
        parts.append((onset, offset, key, velocity))
    if not parts:
        return clean_notes(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), dropped)
    return clean_notes(*(np.concatenate(column) for column in zip(*parts)), dropped)


def pedal_intervals(times: np.ndarray, down: np.ndarray, end_time: float) -> tuple[np.ndarray, np.ndarray]:
    """(press times, release times) of the sustain pedal; a pedal never released lifts at ``end_time``."""
    order = np.argsort(times, kind="stable")
    times, down = times[order], down[order]
    was_down = np.concatenate([[False], down[:-1]])
    presses = times[down & ~was_down]
    releases = times[~down & was_down]
    if len(releases) < len(presses):
        releases = np.concatenate([releases, [max(end_time, presses[-1])]])
    return presses, releases


def sustained_offsets(offset: np.ndarray, presses: np.ndarray, releases: np.ndarray) -> np.ndarray:
    """Move each note-off that falls while the pedal is down to the pedal's release."""
    if len(presses) == 0:
        return offset
    interval = np.searchsorted(presses, offset, side="right") - 1
    held = interval >= 0
    held[held] = offset[held] < releases[interval[held]]
    return np.where(held, releases[np.maximum(interval, 0)], offset)


def end_at_restrike(onset: np.ndarray, offset: np.ndarray, key: np.ndarray) -> np.ndarray:
    """End a note where the same key is struck again later (doublings at the same onset are left alone)."""
    order = np.lexsort((onset, key))
    sorted_onset, sorted_key = onset[order], key[order]
    position_key = sorted_key * 1e7 + sorted_onset  # onsets are below 1e6 s, far inside float64 precision
    next_index = np.searchsorted(position_key, position_key, side="right")
    has_next = next_index < len(order)
    next_index = np.minimum(next_index, len(order) - 1)
    restruck = has_next & (sorted_key[next_index] == sorted_key)
    limit = np.where(restruck, sorted_onset[next_index], np.inf)
    new_offset = offset.copy()
    new_offset[order] = np.minimum(offset[order], limit)
    return new_offset


# --- midi-json (see builder.midi_json) ----------------------------------------------------------------------

def notes_from_midi_json(path: Path | str, dropped: DropCounts | None = None) -> np.ndarray:
    """Notes of a reference midi-json file (see :func:`builder.midi_json.notes_from_midi_json`)."""
    from builder import midi_json

    return midi_json.notes_from_midi_json(path, dropped)


def midi_json_from_notes(notes: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """The reference midi-json object of some notes (see :func:`builder.midi_json.midi_json_from_notes`)."""
    from builder import midi_json

    return midi_json.midi_json_from_notes(notes)


# --- building from sources ----------------------------------------------------------------------------------

def default_name(source: str) -> str:
    """The corpus name a source gives when none is chosen: a built-in's name, else the file or folder stem."""
    if source in BUILTIN_CORPORA:
        return source
    path = Path(source)
    return path.stem if path.suffix.lower() in MIDI_SUFFIXES + (MIDI_JSON_SUFFIX,) else path.name or "corpus"


def build_corpus(sources: Iterable[str], name: str, settings: dict[str, Any], strict: bool = False,
                 warn: Warn | None = None) -> Corpus:
    """Read every source into one corpus: built-in names, MIDI/midi-json files, or folders of them.

    A file that cannot be read is skipped with a warning naming it (``warn``), or raises ``UserError`` when
    ``strict``. Piece ids must be unique across sources.
    """
    warn = warn or (lambda message: None)
    sources = list(sources)
    pieces: list[Piece] = []
    source_records: list[dict[str, Any]] = []
    dropped = DropCounts()
    skipped: list[str] = []
    for source in sources:
        if source in BUILTIN_CORPORA and not Path(source).exists():
            source_pieces, record = _builtin_pieces(source, settings, dropped)
        else:
            source_pieces, record = _file_pieces(source, strict, warn, dropped, skipped)
        pieces.extend(source_pieces)
        source_records.append(record)
    _check_unique_ids(pieces)
    if not pieces:
        raise UserError(f"{', '.join(sources)}: no pieces with notes")
    attrs = {"sources": source_records, "dropped": dropped.as_dict(), "skipped_files": skipped,
             "versions": library_versions("music21", "pretty_midi", "mido", "numpy")}
    if len(sources) == 1 and sources[0] in BUILTIN_CORPORA and not Path(sources[0]).exists():
        attrs["builtin"] = builtin_record(sources[0], settings)  # lets ensure_corpus recognize a stale file
    return Corpus(name=name, pieces=pieces, attrs=attrs)


def _builtin_pieces(source: str, settings: dict[str, Any], dropped: DropCounts) -> tuple[list[Piece], dict]:
    if source == "chorales":
        from builder import chorales

        return chorales.chorale_pieces(dropped, max_pieces=chorales.checked_max_pieces(settings))
    from builder import procedural

    return procedural.procedural_pieces(settings["procedural"], dropped)


def _file_pieces(source: str, strict: bool, warn: Warn, dropped: DropCounts,
                 skipped: list[str]) -> tuple[list[Piece], dict]:
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source}: no such file or folder, and not a built-in corpus "
                        f"({', '.join(BUILTIN_CORPORA)})")
    if path.is_dir():
        files = sorted(file for file in path.rglob("*")
                       if file.is_file() and file.suffix.lower() in MIDI_SUFFIXES + (MIDI_JSON_SUFFIX,))
        if not files:
            raise UserError(f"{source}: no .mid, .midi or .json files in this folder")
        relative_names = [file.relative_to(path).as_posix() for file in files]
    else:
        if path.suffix.lower() not in MIDI_SUFFIXES + (MIDI_JSON_SUFFIX,):
            raise UserError(f"{source}: not a MIDI (.mid, .midi) or midi-json (.json) file")
        files, relative_names = [path], [path.name]
    pieces = []
    for file, relative_name in zip(files, relative_names):
        file_dropped = DropCounts()
        try:
            if file.suffix.lower() == MIDI_JSON_SUFFIX:
                notes = notes_from_midi_json(file, file_dropped)
            else:
                notes = notes_from_midi(file, file_dropped)
        except UserError as error:
            if strict:
                raise
            warn(f"skipped {error}")
            skipped.append(str(file))
            continue
        dropped.add(file_dropped)
        if len(notes) == 0:
            warn(f"skipped {file}: no notes in the piano range")
            skipped.append(str(file))
            continue
        prefix = "midi-json" if file.suffix.lower() == MIDI_JSON_SUFFIX else "midi"
        pieces.append(Piece(piece_id=f"{prefix}/{relative_name}", notes=notes))
    return pieces, {"source": source, "files": len(files), "pieces": len(pieces)}


def _check_unique_ids(pieces: list[Piece]) -> None:
    seen: set[str] = set()
    for piece in pieces:
        if piece.piece_id in seen:
            raise UserError(f"{piece.piece_id}: two sources give a piece with this id; "
                            "build them as separate corpora or rename one")
        seen.add(piece.piece_id)


# --- the corpus file ----------------------------------------------------------------------------------------

def write_corpus(corpus: Corpus, path: Path | str) -> None:
    """Write one HDF5 file: all notes concatenated, where each piece starts, the ids, the attrs as JSON.

    No timestamps and a fixed layout, so identical content gives identical bytes (corpora are hashed
    into the dataset's provenance).
    """
    lengths = np.array([len(piece.notes) for piece in corpus.pieces], dtype=np.int64)
    piece_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    notes = (np.concatenate([piece.notes for piece in corpus.pieces]).astype(NOTE_DTYPE, copy=False)
             if corpus.pieces else np.zeros(0, dtype=NOTE_DTYPE))
    compressed = {"chunks": (min(len(notes), 1 << 16),), "compression": "gzip", "compression_opts": 4,
                  "shuffle": True} if len(notes) else {}
    with atomic_path(path, suffix=".h5") as temporary:
        with h5py.File(temporary, "w") as file:
            file.create_dataset("notes", data=notes, track_times=False, **compressed)
            file.create_dataset("piece_start", data=piece_start, track_times=False)
            file.create_dataset("piece_id", data=np.array([piece.piece_id for piece in corpus.pieces], dtype=object),
                                dtype=h5py.string_dtype("utf-8"), track_times=False)
            file.attrs["format_version"] = FORMAT_VERSION
            file.attrs["name"] = corpus.name
            file.attrs["attrs"] = json.dumps(corpus.attrs, sort_keys=True)


def read_corpus(path: Path | str) -> Corpus:
    """Read a corpus file; ``UserError`` naming the file if it is missing or not a corpus."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such corpus file")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"{path}: not a corpus file (not HDF5)") from error
    with file:
        missing = [name for name in ("notes", "piece_start", "piece_id") if name not in file]
        if missing or "format_version" not in file.attrs:
            raise UserError(f"{path}: not a corpus file (missing {', '.join(missing) or 'format_version'})")
        if int(file.attrs["format_version"]) != FORMAT_VERSION:
            raise UserError(f"{path}: corpus format {file.attrs['format_version']}, this version reads "
                            f"{FORMAT_VERSION}; rebuild it with `builder corpus`")
        if file["notes"].dtype != NOTE_DTYPE:
            raise UserError(f"{path}: notes have dtype {file['notes'].dtype}, expected {NOTE_DTYPE}")
        notes = file["notes"][()]
        piece_start = file["piece_start"][()]
        piece_ids = [value.decode("utf-8") if isinstance(value, bytes) else str(value)
                     for value in file["piece_id"][()]]
        name = str(file.attrs["name"])
        attrs = json.loads(file.attrs["attrs"])
    if len(piece_start) != len(piece_ids) + 1 or piece_start[-1] != len(notes):
        raise UserError(f"{path}: piece_start does not match the notes and piece ids")
    pieces = [Piece(piece_id=piece_id, notes=notes[piece_start[index]:piece_start[index + 1]])
              for index, piece_id in enumerate(piece_ids)]
    return Corpus(name=name, pieces=pieces, attrs=attrs)


def corpus_path(name_or_path: str | Path, data_dir: Path | str) -> Path:
    """Where a corpus lives: a path as given (ending in .h5 or with a folder in it), else data/corpus/NAME.h5.

    Names may contain dots (``bwv1.6``), so only ``.h5`` marks a file name.
    """
    text = str(name_or_path)
    if text.lower().endswith(".h5") or "/" in text or "\\" in text:
        return Path(text)
    return Path(data_dir) / "corpus" / f"{text}.h5"


def ensure_corpus(name_or_path: str | Path, data_dir: Path | str, settings: dict[str, Any], console: Any) -> Path:
    """Return the corpus file, building a built-in (`chorales`, `procedural`) first if it is missing or stale.

    A built-in file made with other settings (another procedural seed, say) is rebuilt, so the dataset
    always follows params.yaml. ``console`` is anything with ``print`` (rich Console).
    """
    path = corpus_path(name_or_path, data_dir)
    name = str(name_or_path)
    if name not in BUILTIN_CORPORA:
        if not path.is_file():
            raise UserError(f"{path}: no such corpus; build it with `builder corpus SOURCE --name {path.stem}`")
        return path
    wanted = builtin_record(name, settings)
    if path.is_file():
        existing = read_corpus(path)
        if existing.attrs.get("builtin") == wanted:
            return path
        console.print(f"{path} was built with other settings; rebuilding the built-in corpus '{name}'")
    else:
        console.print(f"{path} is missing; building the built-in corpus '{name}'")
    built = build_corpus([name], name=name, settings=settings)
    write_corpus(built, path)
    console.print(f"wrote {path}: {describe_corpus(built)}")
    return path


def builtin_record(name: str, settings: dict[str, Any]) -> dict[str, Any]:
    """What a built-in corpus depends on; stored in its attrs so a stale file can be recognized."""
    if name == "procedural":
        from builder import procedural

        return {"name": name, "generator_version": procedural.GENERATOR_VERSION,
                "settings": {key: settings["procedural"][key] for key in sorted(DEFAULT_SETTINGS["procedural"])}}
    from builder import chorales

    return {"name": name, "generator_version": chorales.GENERATOR_VERSION, "music21": chorales.music21_version(),
            "max_pieces": chorales.checked_max_pieces(settings)}


def describe_corpus(corpus: Corpus) -> str:
    """One line: pieces, notes, seconds of music, key range, dropped notes and skipped files."""
    note_count = sum(len(piece.notes) for piece in corpus.pieces)
    seconds = sum(float(piece.notes["offset"].max()) for piece in corpus.pieces if len(piece.notes))
    keys = [piece.notes["key"] for piece in corpus.pieces if len(piece.notes)]
    key_range = f"keys {min(int(k.min()) for k in keys)}..{max(int(k.max()) for k in keys)}" if keys else "no keys"
    dropped = corpus.attrs.get("dropped", {})
    text = (f"{len(corpus.pieces)} pieces, {note_count} notes, {seconds:.0f} s of music ({seconds / 3600:.2f} h), "
            f"{key_range}; dropped {dropped.get('out_of_range', 0)} out-of-range and "
            f"{dropped.get('zero_length', 0)} zero-length notes")
    skipped = corpus.attrs.get("skipped_files", [])
    if skipped:
        text += f"; skipped {len(skipped)} files (unreadable or without piano notes)"
    return text


def write_midi_json_folder(corpus: Corpus, folder: Path | str) -> int:
    """Write each piece as reference midi-json, at FOLDER/<piece id>.json; returns the number written."""
    from builder import midi_json

    folder = Path(folder)
    for piece in corpus.pieces:
        relative = Path(piece.piece_id if piece.piece_id.endswith(MIDI_JSON_SUFFIX) else piece.piece_id + ".json")
        if relative.is_absolute() or ".." in relative.parts:
            raise UserError(f"{piece.piece_id}: piece id is not a safe relative file name")
        midi_json.write_midi_json(piece.notes, folder / relative)
    return len(corpus.pieces)


def stable_seed(text: str) -> int:
    """A seed derived from a string (a piece id), the same on every machine and Python run."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
