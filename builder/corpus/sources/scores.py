"""The built-in ``scores`` corpus: real music from the music21 corpus (inside the installed wheel), played on a piano.

**Which music.** Only the collections of ``ALLOWED_COLLECTIONS`` are ever read: their folders of music21's
corpus are listed by name, and a file outside them is refused (``UserError``). Everything else in that corpus
(``RESERVED_COLLECTIONS``: Bach — the chorales have their own corpus —, Mozart, Haydn, Chopin, Joplin, ...) is
reserved for evaluation and must never come out of here. Left out inside the allowed folders: Monteverdi's
``.rntxt`` (harmonic analyses, not scores), the Finale files of Ciconia and Corelli (``.mus``, ``.musx``: music21
cannot read them; the same music is filed as ``.xml``), the MusicXML copies of Beethoven's op. 18 no. 1 (one
stem filed in two formats is read once, ``SCORE_SUFFIXES`` order: the Humdrum copies have the metronome marks),
a backup copy in trecento and the parser test files of essenFolksong (``LEFT_OUT_FILES``).

**Pieces and ids.** A score file is one piece, ``scores/<collection>/<path in the collection without suffix>``
(``scores/beethoven/opus18no1/movement1``, ``scores/palestrina/Agnus_I_01``). An ``.abc`` file holding several
tunes (an opus) gives one piece per tune, ``scores/<collection>/<file stem>/<X: number>``
(``scores/essenFolksong/erk10/17``); a Josquin ``.abc`` holds one voice per tune number, so its tunes are merged
into one piece with a part per voice. O'Neill's tune numbers are the book's numbers and some files overlap (or
are a second transcription): a number is read from the first file (by name) that has it. Identical content is
kept once. The tunes of ``essenFolksong/variant0`` are variants of one another: ``split_group`` maps them to one
group, so the split can keep them on one side (every other id is its own group).

**Notes.** Every part at sounding pitch, ties joined, repeats expanded (an end repeat after an earlier one
repeats from there, as folk tunes and variations mean it, not from the start as music21 would; a score whose
repeats music21 cannot expand, and Beethoven's five whole quartets filed as one score each (``AS_WRITTEN``), are
read as written: ``attrs["repeats_not_expanded"]``), seconds from the metronome marks
(:mod:`builder.corpus.sources.score_reading`, the chorales' reader and its fast path). A score without a mark
(or a region or a mark without a tempo) gets a tempo drawn per piece: the typical written note — the median
length, rounded to a power of two, at least a quarter, since the Renaissance editions keep half notes as the
beat — at ``TEMPO_RANGES`` notes per minute (vocal polyphony and the rest 60..120, folk tunes 90..160). Chord
symbols are not notes. Keys outside 21..108 are moved by octaves into the piano's range (counted). Then
playable on one piano (:func:`builder.corpus.notes.merge_unisons`) and humanized velocities: a level per piece
(64..100), a level per part (sd 4), the melody (the part with the highest mean key, when there are several) 8
louder, a jitter per note (sd 6) — all from generators seeded by the piece id.

**Building.** A file music21 cannot read (or that gives no notes) is skipped and named in the record, never fatal.
Files are parsed by a pool of ``MAX_WORKERS`` processes (biggest first, results in the fixed order), so the
corpus is the same on every run. The allowed collections hold ~14,000 pieces (8,462 Essen tunes, 1,838 O'Neill's,
1,318 Palestrina movements...), far too many to parse here, so ``max_pieces_per_collection`` (default 30) takes
that many pieces of each collection, spread evenly over its files and tunes in order (``spread``); ``max_pieces``
(0 = all) thins the result the same way. With the defaults: 248 pieces, 12 h of music (Beethoven's 22 quartet
scores are 5.6 h of it and most of the ~190 CPU-seconds), ~100 s on 2 idle cores, ~150 s on a busy machine
(docs/dataset.md, "The scores corpus").
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from builder.corpus.notes import DropCounts, Piece, clean_notes, merge_unisons, stable_seed
from builder.corpus.sources.score_reading import part_columns
from pianoscribe.constants import FOLK_COLLECTIONS, HIGHEST_KEY, LOWEST_KEY, SCORE_COLLECTIONS
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError

GENERATOR_VERSION = 1
ID_PREFIX = "scores"

# The only music21 corpus folders this module reads, in this order.
ALLOWED_COLLECTIONS: tuple[str, ...] = SCORE_COLLECTIONS + FOLK_COLLECTIONS
# music21's other corpus folders: reserved for evaluation, never read here (the tests check both lists).
RESERVED_COLLECTIONS = frozenset(
    {
        "bach",
        "beach",
        "chopin",
        "cpebach",
        "demos",
        "haydn",
        "joplin",
        "leadSheet",
        "miscFolk",
        "mozart",
        "nottingham-dataset",
        "schoenberg",
        "schubert",
        "schumann_clara",
        "schumann_robert",
        "theoryExercises",
        "verdi",
        "weber",
    }
)
VOICES_FILED_AS_TUNES = frozenset({"josquin"})  # each X: of a Josquin .abc is one voice of the piece
TUNE_NUMBERS_ACROSS_FILES = frozenset({"oneills1850"})  # X: is O'Neill's number; files overlap
VARIANT_FILES = frozenset({"essenFolksong/variant0"})  # its tunes are variants of one another: one split group
# What is read; a stem filed in two formats is read once, the first of these: the Humdrum copies of Beethoven's
# op. 18 no. 1 carry his metronome marks, their MusicXML twins none (the same notes otherwise).
SCORE_SUFFIXES = (".krn", ".mxl", ".xml", ".musicxml", ".abc")
LEFT_OUT_FILES = {
    "trecento/PMFC_12_4-Gloria Rvat 1419_bak.xml": "a backup copy of PMFC_12_4-Gloria Rvat 1419.xml",
    "essenFolksong/test0.abc": "music21's parser tests: a few tunes filed again and again",
    "essenFolksong/test1.abc": "music21's parser tests: a few tunes filed again and again",
    "essenFolksong/testd.abc": "music21's parser tests: a few tunes filed again and again",
    "essenFolksong/teste.abc": "music21's parser tests: a few tunes filed again and again",
}

# Read as written, repeats not expanded: Beethoven's whole quartets filed as one score each. music21 cannot expand
# the repeats of three (ExpanderException), takes minutes over op. 18 no. 4 (expanding it to 4.4x its written
# length, 3611 measures of 809) and 2.5 minutes over op. 74; the quartets filed by movement are expanded.
WHOLE_QUARTET = "a whole quartet in one score: music21's repeat expansion fails, misreads or takes minutes"
AS_WRITTEN = {
    f"beethoven/{name}.mxl": WHOLE_QUARTET for name in ("opus18no3", "opus18no4", "opus18no5", "opus74", "opus132")
}
TEMPO_RANGES = {"folk": (90.0, 160.0), "other": (60.0, 120.0)}  # typical written notes per minute, unmarked scores
VELOCITY_LEVELS = (64, 100)
PART_LEVEL_SD = 4.0
MELODY_BOOST = 8.0
VELOCITY_JITTER = 6.0
MAX_WORKERS = 2
_TEMPO_STREAM, _VELOCITY_STREAM = 1, 2  # the two generators seeded by a piece id
_TUNE_NUMBER = re.compile(r"^\s*X:\s*(\d+)\s*$", re.MULTILINE)


def music21_version() -> str:
    import music21

    return str(music21.__version__)


def corpus_root() -> Path:
    """music21's corpus folder inside the installed package (every collection is a folder of it)."""
    import music21

    return Path(music21.__file__).resolve().parent / "corpus"


@dataclass(frozen=True)
class Entry:
    """One piece to read: a score file, or one tune (``number``, its X: number) of an .abc opus."""

    collection: str
    path: Path
    name: str  # the path inside the collection's folder, without suffix, '/'-separated
    number: int | None = None

    @property
    def piece_id(self) -> str:
        tune = "" if self.number is None else f"/{self.number}"
        return f"{ID_PREFIX}/{self.collection}/{self.name}{tune}"


class Reading(NamedTuple):
    """What a worker sends back for an entry: its note columns and how they were timed."""

    onset: np.ndarray
    offset: np.ndarray
    key: np.ndarray
    part: np.ndarray
    parts: int
    tempo_drawn: bool
    repeats_expanded: bool


def checked_settings(settings: dict[str, Any] | None) -> dict[str, int]:
    """The ``corpus.scores`` section over its defaults (``pianoscribe.defaults``), or a UserError naming the bad key."""
    settings = dict(settings or {})
    built_in = defaults("corpus")["scores"]
    unknown = sorted(set(settings) - set(built_in))
    if unknown:
        raise UserError(f"params corpus.scores.{unknown[0]}: unknown (known: {', '.join(built_in)})")
    checked = {**built_in, **settings}
    for key, value in checked.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"params corpus.scores.{key}: {value!r}, must be a whole number >= 0 (0 = all)")
    return checked


def scores_record(settings: dict[str, Any] | None) -> dict[str, Any]:
    """What a built ``scores`` corpus depends on (for ``ensure_corpus`` to tell a stale file)."""
    return {
        "name": "scores",
        "generator_version": GENERATOR_VERSION,
        "music21": music21_version(),
        "settings": checked_settings(settings),
    }


def split_group(piece_id: str) -> str:
    """The group the train/test split should hash for a piece id: variants of one tune share one."""
    parts = piece_id.split("/")
    if len(parts) == 4 and f"{parts[1]}/{parts[2]}" in VARIANT_FILES:
        return "/".join(parts[:3])
    return piece_id


def collection_of(path: Path, root: Path) -> str:
    """The allowed collection a file belongs to (the first folder under ``root``), or a UserError."""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        raise UserError(f"{path}: not inside music21's corpus folder {root}") from None
    collection = relative.parts[0] if len(relative.parts) > 1 else ""
    if collection not in ALLOWED_COLLECTIONS:
        reason = "is reserved for evaluation" if collection in RESERVED_COLLECTIONS else "is not an allowed collection"
        allowed = ", ".join(ALLOWED_COLLECTIONS)
        raise UserError(f"{path}: '{collection}' {reason}; the scores corpus reads only {allowed}")
    return collection


def collection_files(root: Path | None = None) -> list[Path]:
    """The score files of the allowed collections, collection by collection (allow-list order), by path.

    Only the folders ``root/<name>`` of ``ALLOWED_COLLECTIONS`` are listed. A stem filed in two formats is read
    once (the first in ``SCORE_SUFFIXES`` order); ``LEFT_OUT_FILES`` are left out.
    """
    root = corpus_root() if root is None else root
    files: list[Path] = []
    for collection in ALLOWED_COLLECTIONS:
        folder = root / collection
        if not folder.is_dir():
            raise UserError(f"{folder}: music21's corpus has no '{collection}' folder (is the music21 wheel complete?)")
        by_stem: dict[str, Path] = {}
        candidates = [path for path in folder.rglob("*") if path.is_file() and path.suffix in SCORE_SUFFIXES]
        for path in sorted(candidates, key=lambda path: (SCORE_SUFFIXES.index(path.suffix), path.as_posix())):
            relative = path.relative_to(root).as_posix()
            if relative not in LEFT_OUT_FILES:
                by_stem.setdefault(relative[: -len(path.suffix)], path)
        files.extend(by_stem[stem] for stem in sorted(by_stem))
    return files


def piece_entries(files: list[Path], root: Path) -> tuple[list[Entry], dict[str, str]]:
    """Every piece of ``files`` (a tune of an .abc opus is a piece), in order, and the tunes repeated elsewhere
    (id -> the id kept)."""
    entries: list[Entry] = []
    repeated: dict[str, str] = {}
    first_with_number: dict[tuple[str, int], str] = {}
    for path in files:
        collection = collection_of(path, root)
        name = path.resolve().relative_to((root / collection).resolve()).with_suffix("").as_posix()
        numbers = tune_numbers(path) if path.suffix == ".abc" else []
        if len(numbers) <= 1 or collection in VOICES_FILED_AS_TUNES:
            entries.append(Entry(collection, path, name))
            continue
        for number in numbers:
            entry = Entry(collection, path, name, number)
            if collection in TUNE_NUMBERS_ACROSS_FILES:
                kept = first_with_number.setdefault((collection, number), entry.piece_id)
                if kept != entry.piece_id:
                    repeated[entry.piece_id] = kept
                    continue
            entries.append(entry)
    return entries, repeated


def tune_numbers(path: Path) -> list[int]:
    """The X: reference numbers of an .abc file, each once, in file order (music21 reads the first of a twice)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return list(dict.fromkeys(int(number) for number in _TUNE_NUMBER.findall(text)))


def spread(count: int, take: int) -> list[int]:
    """``take`` indices of ``range(count)`` spread evenly (the middle of each of ``take`` equal bins), in order;
    all of them when ``take`` is 0 or at least ``count``."""
    if take == 0 or take >= count:
        return list(range(count))
    return [(2 * index + 1) * count // (2 * take) for index in range(take)]


def select_entries(entries: list[Entry], settings: dict[str, int]) -> list[Entry]:
    """At most ``max_pieces_per_collection`` of each collection, then at most ``max_pieces``, spread out."""
    by_collection: dict[str, list[Entry]] = {}
    for entry in entries:
        by_collection.setdefault(entry.collection, []).append(entry)
    per_collection = settings["max_pieces_per_collection"]
    selected = [
        collection_entries[index]
        for collection_entries in by_collection.values()
        for index in spread(len(collection_entries), per_collection)
    ]
    return [selected[index] for index in spread(len(selected), settings["max_pieces"])]


def score_pieces(
    settings: dict[str, Any] | None,
    dropped: DropCounts,
    workers: int | None = None,
    files: list[Path] | None = None,
    root: Path | None = None,
) -> tuple[list[Piece], dict[str, Any]]:
    """The pieces of the allowed collections (or of ``files``, inside ``root``, music21's corpus folder by default).

    ``settings`` is the ``corpus.scores`` section. Returns the pieces, in the fixed order
    of the allow-list, the files and the tunes, and the record of how they were made.
    """
    checked = checked_settings(settings)
    root = corpus_root() if root is None else root
    files = collection_files(root) if files is None else files
    entries, repeated = piece_entries(files, root)
    selected = select_entries(entries, checked)
    results = _read_all(selected, workers)

    pieces: list[Piece] = []
    skipped: dict[str, str] = {}
    no_notes: list[str] = []
    first_by_content: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    repeats_not_expanded: list[str] = []
    tempo_drawn = folded = 0
    counts: dict[str, dict[str, int]] = {}
    for path in files:
        empty = {"files": 0, "pieces_available": 0, "pieces_read": 0, "pieces": 0}
        counts.setdefault(collection_of(path, root), empty)["files"] += 1
    for entry in entries:
        counts[entry.collection]["pieces_available"] += 1
    for entry, result in zip(selected, results):
        piece_id = entry.piece_id
        counts[entry.collection]["pieces_read"] += 1
        if isinstance(result, str):
            skipped[piece_id] = result
            continue
        if len(result.key) == 0:
            no_notes.append(piece_id)
            continue
        content = _content_digest(result)
        if content in first_by_content:
            duplicates[piece_id] = first_by_content[content]
            continue
        first_by_content[content] = piece_id
        key, moved = fold_into_piano(result.key)
        velocity = humanized_velocities(piece_id, result.part, result.parts, key)
        notes = merge_unisons(clean_notes(result.onset, result.offset, key, velocity, dropped))
        if len(notes) == 0:
            no_notes.append(piece_id)
            continue
        folded += moved
        tempo_drawn += result.tempo_drawn
        if not result.repeats_expanded:
            repeats_not_expanded.append(piece_id)
        counts[entry.collection]["pieces"] += 1
        pieces.append(Piece(piece_id=piece_id, notes=notes))
    _check_allowed(pieces)
    record = {
        "source": "scores",
        "settings": checked,
        "collections": counts,
        "files": len(files),
        "pieces": len(pieces),
        "skipped": skipped,
        "no_notes": no_notes,
        "duplicates": duplicates,
        "repeated_tunes": len(repeated),
        "left_out_files": LEFT_OUT_FILES,
        "repeats_not_expanded": repeats_not_expanded,
        "tempo_drawn": tempo_drawn,
        "keys_moved_by_octaves": folded,
        "music21": music21_version(),
        "tempo": "metronome marks; without: the median written note (a power of two, at least a quarter) at "
        f"{TEMPO_RANGES['other'][0]:g}..{TEMPO_RANGES['other'][1]:g} per minute, folk tunes "
        f"{TEMPO_RANGES['folk'][0]:g}..{TEMPO_RANGES['folk'][1]:g}, seeded by piece id",
        "velocity": f"per-piece level uniform {VELOCITY_LEVELS[0]}..{VELOCITY_LEVELS[1]}, per-part normal sd "
        f"{PART_LEVEL_SD:g}, melody +{MELODY_BOOST:g}, per-note normal sd {VELOCITY_JITTER:g}, seeded by piece id",
        "voices": "every part; unisons merged, a re-struck key ends the previous note",
        "repeats": "expanded (an end repeat after another repeats from there), except repeats_not_expanded",
    }
    return pieces, record


def fold_into_piano(key: np.ndarray) -> tuple[np.ndarray, int]:
    """Keys outside 21..108 moved by whole octaves into the range, and how many were moved."""
    key = np.asarray(key, dtype=np.int64)
    below = key < LOWEST_KEY
    above = key > HIGHEST_KEY
    folded = key.copy()
    folded[below] += 12 * ((LOWEST_KEY - key[below] + 11) // 12)
    folded[above] -= 12 * ((key[above] - HIGHEST_KEY + 11) // 12)
    return folded, int(np.count_nonzero(below | above))


def humanized_velocities(piece_id: str, part: np.ndarray, parts: int, key: np.ndarray) -> np.ndarray:
    """MIDI velocities for a score without dynamics: a piece level, a level per part (the melody louder), and a
    per-note jitter, all seeded by the piece id."""
    rng = np.random.default_rng([stable_seed(piece_id), _VELOCITY_STREAM])
    level = rng.integers(VELOCITY_LEVELS[0], VELOCITY_LEVELS[1] + 1)
    part_levels = rng.normal(0.0, PART_LEVEL_SD, parts)
    if parts > 1:
        notes_per_part = np.bincount(part, minlength=parts)
        key_sums = np.bincount(part, weights=key.astype(np.float64), minlength=parts)
        mean_key = np.where(notes_per_part > 0, key_sums / np.maximum(notes_per_part, 1), -np.inf)
        part_levels[int(np.argmax(mean_key))] += MELODY_BOOST
    jitter = rng.normal(0.0, VELOCITY_JITTER, len(part))
    return np.clip(np.rint(level + part_levels[part] + jitter), 1, 127)


def unmarked_seconds_per_quarter(piece_id: str, collection: str, written_lengths: np.ndarray) -> float:
    """The tempo of a score without metronome marks: the typical written note (median length, a power of two,
    at least a quarter) at a number per minute drawn from the collection's range, seeded by the piece id."""
    low, high = TEMPO_RANGES["folk" if collection in FOLK_COLLECTIONS else "other"]
    per_minute = np.random.default_rng([stable_seed(piece_id), _TEMPO_STREAM]).uniform(low, high)
    lengths = written_lengths[written_lengths > 0]
    typical = float(np.median(lengths)) if len(lengths) else 1.0
    unit = max(1.0, 2.0 ** round(np.log2(typical)))
    return 60.0 / (per_minute * unit)


def read_entry(entry: Entry) -> Reading:
    """Parse one piece with music21 and read every part's notes (``score_reading.part_columns``)."""
    from music21 import converter

    with warnings.catch_warnings():  # music21's notes on odd measures would be printed by every worker
        warnings.simplefilter("ignore")
        score = converter.parse(str(entry.path), forceSource=True, number=entry.number)
        return _read_score(entry, score)


def _read_score(entry: Entry, score: Any) -> Reading:
    from music21 import harmony, repeat, stream

    if isinstance(score, stream.Opus):
        if entry.collection in VOICES_FILED_AS_TUNES:
            score = score.mergeScores()
        elif len(score.scores) == 1:
            score = score.scores[0]
        else:
            raise ValueError(f"an opus of {len(score.scores)} pieces where one was expected")
    for symbol in list(score.recurse().getElementsByClass(harmony.Harmony)):  # chord symbols are not notes
        symbol.activeSite.remove(symbol)
    flat = score.flatten()
    written = np.array([float(element.quarterLength) for element in flat.notes], dtype=np.float64)
    seconds_per_quarter = unmarked_seconds_per_quarter(entry.piece_id, entry.collection, written)
    tempo_drawn = not _starts_with_a_tempo(flat)
    _drop_repeated_tempo_marks(score)
    _imply_start_repeats(score)
    expanded = f"{entry.collection}/{entry.name}{entry.path.suffix}" not in AS_WRITTEN
    try:
        columns = part_columns(score, expanded, seconds_per_quarter)
    except repeat.ExpanderException:  # badly formed repeats: the score as written
        expanded = False
        columns = part_columns(score, expanded, seconds_per_quarter)
    return Reading(*columns, tempo_drawn=tempo_drawn, repeats_expanded=expanded)


def _imply_start_repeats(score: Any) -> None:
    """Write the start repeat an end repeat implies after an earlier one: ``|: A :| B :|`` plays A A B B.

    Folk tunes and variations mark a repeated section by its end only; music21 takes such an end repeat back
    to the start of the piece (A A B A B), so the start is set where the previous repeated section ends (after
    its second ending, if it has one). An end repeat with none before it goes back to the start, as written.
    """
    from music21 import bar, spanner, stream

    for part in score.parts:
        measures = list(part.getElementsByClass(stream.Measure))
        in_ending = {
            id(measure)
            for bracket in part.spanners.getElementsByClass(spanner.RepeatBracket)
            for measure in bracket.getSpannedElements()
        }
        open_start = False
        previous_end: int | None = None
        for index, measure in enumerate(measures):
            if isinstance(measure.leftBarline, bar.Repeat) and measure.leftBarline.direction == "start":
                open_start = True
            if isinstance(measure.rightBarline, bar.Repeat) and measure.rightBarline.direction == "end":
                if not open_start and previous_end is not None:
                    start = previous_end + 1
                    while start < index and id(measures[start]) in in_ending:
                        start += 1
                    measures[start].leftBarline = bar.Repeat(direction="start")
                open_start = False
                previous_end = index


def _drop_repeated_tempo_marks(score: Any) -> None:
    """A tempo mark repeated in every part (Humdrum, some MusicXML) is kept once, in the first part that has it.

    The marks then give one tempo region where there is one, and a score with one tempo can take the fast
    path of ``part_columns`` (one part's repeats expanded) instead of expanding every part.
    """
    from music21 import tempo

    seen: set[tuple[float, str]] = set()
    for mark in list(score.recurse().getElementsByClass(tempo.TempoIndication)):
        identity = (float(mark.getOffsetInHierarchy(score)), repr(mark))
        if identity in seen:
            mark.activeSite.remove(mark)
        seen.add(identity)


def _starts_with_a_tempo(flat: Any) -> bool:
    """Whether a flattened score opens with a metronome mark that gives a tempo (else a drawn one is used)."""
    from music21 import tempo

    marks = flat.getElementsByClass(tempo.TempoIndication)
    if not marks or float(marks[0].getOffsetBySite(flat)) > float(flat.lowestOffset):
        return False
    try:
        marks[0].getSoundingMetronomeMark().secondsPerQuarter()
    except tempo.TempoException:
        return False
    return True


def _read_entry_or_error(entry: Entry) -> Reading | str:
    """Worker entry: the reading or the error's text (errors do not pickle well; the parent records it)."""
    try:
        return read_entry(entry)
    except Exception as error:  # music21 raises many types for a file it cannot read
        return f"{type(error).__name__}: {error}"


def _read_all(entries: list[Entry], workers: int | None) -> list[Reading | str]:
    """Every entry read, in the entries' order. A pool reads the biggest pieces first (a whole quartet takes
    ~15 s, a tune ~0.1 s), so no worker is left with a long one at the end; each result depends on its entry
    alone, so the order of reading changes nothing."""
    workers = min(workers or MAX_WORKERS, len(os.sched_getaffinity(0)), len(entries))
    if workers <= 1:
        return [_read_entry_or_error(entry) for entry in entries]
    pieces_in_file = Counter(entry.path for entry in entries)
    work = {  # a rough measure: bytes per piece, compressed MusicXML and dense Humdrum ~10x a byte of the others
        path: path.stat().st_size * (10 if path.suffix in (".mxl", ".krn") else 1) / count
        for path, count in pieces_in_file.items()
    }
    biggest_first = sorted(range(len(entries)), key=lambda index: (-work[entries[index].path], index))
    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        read = pool.map(_read_entry_or_error, [entries[index] for index in biggest_first], chunksize=1)
        by_index = dict(zip(biggest_first, read))
    return [by_index[index] for index in range(len(entries))]


def _content_digest(reading: Reading) -> str:
    rows = np.stack([np.round(reading.onset, 4), np.round(reading.offset, 4), reading.key.astype(np.float64)], axis=1)
    rows = rows[np.lexsort(rows.T[::-1])]
    return hashlib.sha256(rows.tobytes()).hexdigest()


def _check_allowed(pieces: list[Piece]) -> None:
    """The last guard of the rule: no piece id names a collection outside the allow-list."""
    for piece in pieces:
        prefix, collection, *_ = piece.piece_id.split("/")
        if prefix != ID_PREFIX or collection not in ALLOWED_COLLECTIONS:
            raise RuntimeError(f"{piece.piece_id}: not from an allowed collection (a bug in the scores corpus)")
