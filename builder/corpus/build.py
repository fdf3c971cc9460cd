"""Building a corpus from its sources, and finding or building a corpus by name: the stage ``builder corpus`` runs.

Sources are built-in names (``BUILTIN_CORPORA``), MIDI and midi-json files, or folders of them; each source
module (``builder.corpus.sources``) reduces its files to the note model (``builder.corpus.notes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.corpus.file import corpus_path, describe_corpus, read_corpus, write_corpus
from builder.corpus.notes import Corpus, DropCounts, Piece
from builder.corpus.sources import chorales, pianistic, procedural, scores
from builder.corpus.sources.midi import MIDI_SUFFIXES, notes_from_midi
from builder.corpus.sources.midi_json import MIDI_JSON_SUFFIX, notes_from_midi_json, write_midi_json
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from pianoscribe.versions import library_versions

Warn = Callable[[str], None]


@dataclass(frozen=True)
class BuiltinCorpus:
    """A built-in corpus: what it is, how its pieces are made, and what it depends on (``record``, kept in the
    file's attrs so ``ensure_corpus`` can tell a file made with other settings)."""

    description: str
    pieces: Callable[[dict[str, Any], DropCounts], tuple[list[Piece], dict[str, Any]]]
    record: Callable[[dict[str, Any]], dict[str, Any]]


def _chorale_pieces(settings: dict[str, Any], dropped: DropCounts) -> tuple[list[Piece], dict[str, Any]]:
    return chorales.chorale_pieces(dropped, max_pieces=chorales.checked_max_pieces(settings))


def _chorales_record(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "chorales",
        "generator_version": chorales.GENERATOR_VERSION,
        "music21": chorales.music21_version(),
        "max_pieces": chorales.checked_max_pieces(settings),
    }


def _generator_record(name: str, generator_version: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What a generated corpus depends on: its generator's version and its settings section."""

    def record(settings: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "generator_version": generator_version,
            "settings": {key: settings[name][key] for key in sorted(defaults("corpus")[name])},
        }

    return record


BUILTIN_CORPORA: dict[str, BuiltinCorpus] = {
    "chorales": BuiltinCorpus(
        "the Bach chorales of the music21 corpus (its other pieces are reserved for evaluation)",
        _chorale_pieces,
        _chorales_record,
    ),
    "procedural": BuiltinCorpus(
        "generated chords, scales, arpeggios and clusters over all 88 keys (params: corpus.procedural)",
        lambda settings, dropped: procedural.procedural_pieces(settings["procedural"], dropped),
        _generator_record("procedural", procedural.GENERATOR_VERSION),
    ),
    "scores": BuiltinCorpus(
        "music of the allowed music21 collections (Palestrina, Monteverdi, Beethoven quartets, trecento, folk "
        "tunes, ...), every part on the piano (params: corpus.scores)",
        lambda settings, dropped: scores.score_pieces(settings["scores"], dropped),
        lambda settings: scores.scores_record(settings["scores"]),
    ),
    "pianistic": BuiltinCorpus(
        "generated piano writing: progressions as Alberti and stride basses, arpeggios, runs, block chords, "
        "melody over accompaniment, pedal and rubato (params: corpus.pianistic)",
        lambda settings, dropped: pianistic.pianistic_pieces(settings["pianistic"], dropped),
        _generator_record("pianistic", pianistic.GENERATOR_VERSION),
    ),
}
SOURCE_SUFFIXES = (*MIDI_SUFFIXES, MIDI_JSON_SUFFIX)


def default_name(source: str) -> str:
    """The corpus name a source gives when none is chosen: a built-in's name, else the file or folder stem."""
    if source in BUILTIN_CORPORA:
        return source
    path = Path(source)
    return path.stem if path.suffix.lower() in SOURCE_SUFFIXES else path.name or "corpus"


def build_corpus(
    sources: Iterable[str], name: str, settings: dict[str, Any], strict: bool = False, warn: Warn | None = None
) -> Corpus:
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
            source_pieces, record = BUILTIN_CORPORA[source].pieces(settings, dropped)
        else:
            source_pieces, record = _file_pieces(source, strict, warn, dropped, skipped)
        pieces.extend(source_pieces)
        source_records.append(record)
    _check_unique_ids(pieces)
    if not pieces:
        raise UserError(f"{', '.join(sources)}: no pieces with notes")
    attrs = {
        "sources": source_records,
        "dropped": dropped.as_dict(),
        "skipped_files": skipped,
        "versions": library_versions("music21", "pretty_midi", "mido", "numpy"),
    }
    if len(sources) == 1 and sources[0] in BUILTIN_CORPORA and not Path(sources[0]).exists():
        attrs["builtin"] = BUILTIN_CORPORA[sources[0]].record(settings)  # lets ensure_corpus recognize a stale file
    return Corpus(name=name, pieces=pieces, attrs=attrs)


def _file_pieces(
    source: str, strict: bool, warn: Warn, dropped: DropCounts, skipped: list[str]
) -> tuple[list[Piece], dict]:
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source}: no such file or folder, and not a built-in corpus ({', '.join(BUILTIN_CORPORA)})")
    if path.is_dir():
        files = sorted(file for file in path.rglob("*") if file.is_file() and file.suffix.lower() in SOURCE_SUFFIXES)
        if not files:
            raise UserError(f"{source}: no .mid, .midi or .json files in this folder")
        relative_names = [file.relative_to(path).as_posix() for file in files]
    else:
        if path.suffix.lower() not in SOURCE_SUFFIXES:
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
            raise UserError(
                f"{piece.piece_id}: two sources give a piece with this id; build them as separate corpora or rename one"
            )
        seen.add(piece.piece_id)


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
    wanted = BUILTIN_CORPORA[name].record(settings)
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


def write_midi_json_folder(corpus: Corpus, folder: Path | str) -> int:
    """Write each piece as reference midi-json, at FOLDER/<piece id>.json; returns the number written."""
    folder = Path(folder)
    for piece in corpus.pieces:
        relative = Path(piece.piece_id if piece.piece_id.endswith(MIDI_JSON_SUFFIX) else piece.piece_id + ".json")
        if relative.is_absolute() or ".." in relative.parts:
            raise UserError(f"{piece.piece_id}: piece id is not a safe relative file name")
        write_midi_json(piece.notes, folder / relative)
    return len(corpus.pieces)
