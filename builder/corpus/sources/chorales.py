"""The built-in ``chorales`` corpus: the Bach chorales shipped inside the music21 wheel, as piano notes.

Only the chorales are used: music21's other pieces (and Bach's WTC prelude BWV 846 filed among the chorales)
are reserved for evaluation and must never be trained on. Each score is read directly (no MIDI round trip):
sounding pitch, repeats expanded and ties joined the way music21's own MIDI export does it, seconds from the
score's metronome marks. Checked against that export (which also made the reference's ``bwv1.6.mid``): 405 of
the 409 chorales give the same notes within 1 ms; the other four differ in one tie chain or a grace note (a
zero-length note here, dropped and counted), and reading directly is ~7x faster than exporting.
The voices are then made playable on one piano (:func:`builder.corpus.notes.merge_unisons`: unison doublings merged,
a re-struck key ends the previous note). The chorales have no dynamics, so velocities are humanized: a level
per piece (64..100) plus a per-note jitter (sd 6), drawn from a generator seeded by the piece id, so the corpus
is the same on every run. Identical scores filed twice are kept once (``attrs["duplicates"]``).

Parsing ~400 MusicXML files is the slow part (music21, ~0.03-0.05 s each on an idle core), so scores are read
by a small process pool in a fixed order; the corpus file itself is the cache (``builder.corpus.build.ensure_corpus``).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from builder.corpus.notes import DropCounts, Piece, clean_notes, merge_unisons, stable_seed
from pianoscribe.errors import UserError

GENERATOR_VERSION = 2  # 2: the two chorales filed as .xml are included
MUSICXML_SUFFIXES = (".mxl", ".xml")
NOT_CHORALES = frozenset({"bwv846"})  # Well-Tempered Clavier I, Prelude in C: filed under bach/, not a chorale
MIN_VOICES = 4
VELOCITY_LEVELS = (64, 100)
VELOCITY_JITTER = 6.0
MAX_WORKERS = 2


def music21_version() -> str:
    import music21

    return str(music21.__version__)


def chorale_files() -> list[Path]:
    """The chorale MusicXML files of music21's ``bach`` corpus (.mxl, or .xml for the two only filed so), by name.

    The Humdrum (.krn) copies of three chorales are the same music as their .mxl and are left out.
    """
    from music21 import corpus as music21_corpus

    musicxml = [Path(path) for path in music21_corpus.getComposer("bach") if Path(path).suffix in MUSICXML_SUFFIXES]
    by_stem: dict[str, Path] = {}
    for path in sorted(musicxml, key=lambda path: MUSICXML_SUFFIXES.index(path.suffix)):  # .mxl first
        if path.name.startswith("bwv") and path.stem not in NOT_CHORALES:
            by_stem.setdefault(path.stem, path)
    chorales = list(by_stem.values())
    if not chorales:
        raise UserError("chorales: music21's corpus has no Bach chorales (is the music21 wheel complete?)")
    return sorted(chorales, key=lambda path: path.name)


def checked_max_pieces(settings: dict[str, Any]) -> int:
    """``corpus.chorales.max_pieces`` (0 = all), or a UserError naming it."""
    value = (settings.get("chorales") or {}).get("max_pieces", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"params corpus.chorales.max_pieces: {value!r}, must be a whole number >= 0 (0 = all)")
    return value


def chorale_pieces(
    dropped: DropCounts, workers: int | None = None, files: list[Path] | None = None, max_pieces: int = 0
) -> tuple[list[Piece], dict[str, Any]]:
    """The chorales (or ``files``; the first ``max_pieces`` if > 0) as pieces ``chorales/<bwv name>``.

    Returns the pieces and the attrs that say how they were made.
    """
    files = chorale_files() if files is None else files
    files = files[:max_pieces] if max_pieces else files
    workers = min(workers or MAX_WORKERS, len(os.sched_getaffinity(0)), len(files))
    if workers > 1:
        context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_score_columns_or_error, [str(path) for path in files], chunksize=4))
    else:
        results = [_score_columns_or_error(str(path)) for path in files]

    pieces: list[Piece] = []
    first_by_content: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    not_chorales: list[str] = []
    for path, result in zip(files, results):
        piece_id = f"chorales/{path.stem}"
        if isinstance(result, str):
            raise UserError(f"{path}: music21 could not read this chorale ({result})")
        onset, offset, key, voices = result
        if voices < MIN_VOICES:
            not_chorales.append(path.stem)
            continue
        content = _content_digest(onset, offset, key)
        if content in first_by_content:
            duplicates[path.stem] = first_by_content[content]
            continue
        first_by_content[content] = path.stem
        notes = clean_notes(onset, offset, key, humanized_velocities(piece_id, len(key)), dropped)
        pieces.append(Piece(piece_id=piece_id, notes=merge_unisons(notes)))
    record = {
        "source": "chorales",
        "files": len(files),
        "max_pieces": max_pieces,
        "pieces": len(pieces),
        "duplicates": duplicates,
        "not_chorales": sorted(NOT_CHORALES) + not_chorales,
        "music21": music21_version(),
        "velocity": f"per-piece level uniform {VELOCITY_LEVELS[0]}..{VELOCITY_LEVELS[1]} + normal jitter sd "
        f"{VELOCITY_JITTER}, seeded by piece id",
        "voices": "unisons merged, a re-struck key ends the previous note",
        "repeats": "expanded",
    }
    return pieces, record


def humanized_velocities(piece_id: str, count: int) -> np.ndarray:
    """MIDI velocities for a score without dynamics: a piece level and a per-note jitter, seeded by the id."""
    rng = np.random.default_rng(stable_seed(piece_id))
    level = rng.integers(VELOCITY_LEVELS[0], VELOCITY_LEVELS[1] + 1)
    return np.clip(np.rint(level + rng.normal(0.0, VELOCITY_JITTER, count)), 1, 127)


def _content_digest(onset: np.ndarray, offset: np.ndarray, key: np.ndarray) -> str:
    rows = np.stack([np.round(onset, 4), np.round(offset, 4), key.astype(np.float64)], axis=1)
    rows = rows[np.lexsort(rows.T[::-1])]
    return hashlib.sha256(rows.tobytes()).hexdigest()


def _score_columns_or_error(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | str:
    """Worker entry: the score's (onset s, offset s, key, voices) or the error's text (errors do not pickle well)."""
    try:
        return score_columns(path)
    except Exception as error:  # music21 raises many types for a damaged file; the parent names the file
        return f"{type(error).__name__}: {error}"


def score_columns(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Sounding notes of a score file as (onset seconds, offset seconds, MIDI key, number of parts)."""
    from music21 import converter

    score = converter.parse(str(path), forceSource=True)
    return notes_of_score(score)


def notes_of_score(score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(onset s, offset s, key, parts) of a music21 score, ties joined, repeats expanded, at sounding pitch."""
    if any(part.atSoundingPitch is False for part in score.parts):
        score = score.toSoundingPitch()
    plan = _measure_plan(score)
    if plan is None:
        return _notes_of_expanded_score(score.expandRepeats() if _has_repeats(score) else score)
    rows: list[list[float]] = []
    for part in score.parts:
        _append_tied_notes(_part_in_order(part, plan), rows)
    return _columns_in_seconds(score, rows)


def _has_repeats(score: Any) -> bool:
    from music21 import bar, repeat

    first_part = score.parts[0] if len(score.parts) else score
    marks = first_part.recurse().getElementsByClass((bar.Barline, repeat.RepeatExpression))
    return any(isinstance(mark, (bar.Repeat, repeat.RepeatExpression)) for mark in marks)


def _measure_plan(score: Any) -> list[int] | None:
    """Measure indices in playing order, from expanding the first part's repeats only.

    ``Score.expandRepeats`` deep-copies every part and is most of the parse time; the parts of a chorale share
    their barlines, so one part's expansion gives the order for all. ``None`` (expand the whole score) when
    the parts' measures do not line up, the tempo changes, or there are no repeats to expand.
    """
    from music21 import stream

    if not len(score.parts) or not _has_repeats(score) or len(score.metronomeMarkBoundaries()) != 1:
        return None
    measures = [list(part.getElementsByClass(stream.Measure)) for part in score.parts]
    if len({len(part_measures) for part_measures in measures}) != 1 or not measures[0]:
        return None
    index_of = {id(measure): index for index, measure in enumerate(measures[0])}
    expanded = score.parts[0].expandRepeats().getElementsByClass(stream.Measure)
    plan = [_original_index(measure, index_of) for measure in expanded]
    return [index for index in plan if index is not None] if all(index is not None for index in plan) else None


def _original_index(measure: Any, index_of: dict[int, int]) -> int | None:
    """Index of the score measure an expanded measure was copied from (nested repeats copy copies)."""
    origin = measure.derivation.origin
    while origin is not None and id(origin) not in index_of:
        origin = origin.derivation.origin
    return None if origin is None else index_of[id(origin)]


def _part_in_order(part: Any, plan: list[int]) -> list[tuple[float, Any]]:
    """(offset in quarters, note or chord) of a part played in ``plan`` order, measures back to back."""
    from music21 import stream

    measures = list(part.getElementsByClass(stream.Measure))
    placed: list[tuple[float, Any]] = []
    measure_start = 0.0
    for index in plan:
        measure = measures[index]
        placed.extend((measure_start + float(element.offset), element) for element in measure.flatten().notes)
        measure_start += float(measure.duration.quarterLength)
    return placed


def _notes_of_expanded_score(score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    rows: list[list[float]] = []
    for part in score.parts:
        _append_tied_notes([(float(element.offset), element) for element in part.flatten().notes], rows)
    return _columns_in_seconds(score, rows)


def _columns_in_seconds(score: Any, rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    quarters = np.array(rows, dtype=np.float64).reshape(-1, 3)
    to_seconds = _quarters_to_seconds(score)
    return (to_seconds(quarters[:, 0]), to_seconds(quarters[:, 1]), quarters[:, 2].astype(np.int64), len(score.parts))


def _append_tied_notes(placed: list[tuple[float, Any]], rows: list[list[float]]) -> None:
    """Append [onset, offset, key] in quarter notes for one part, a tied chain becoming one note."""
    open_ties: dict[int, int] = {}
    for onset, element in placed:
        offset = onset + float(element.quarterLength)
        members = element.notes if element.isChord else (element,)
        for note in members:
            tie = note.tie if note.tie is not None else (element.tie if element.isChord else None)
            tie_type = tie.type if tie is not None else None
            key = note.pitch.midi
            if tie_type in ("continue", "stop") and key in open_ties and rows[open_ties[key]][1] == onset:
                rows[open_ties[key]][1] = offset
                if tie_type == "stop":
                    del open_ties[key]
                continue
            rows.append([onset, offset, key])
            if tie_type in ("start", "continue"):
                open_ties[key] = len(rows) - 1


def _quarters_to_seconds(score: Any):
    """Piecewise-linear map from quarter-note offsets to seconds following the score's metronome marks."""
    boundaries = score.metronomeMarkBoundaries()
    quarter_points = [float(boundaries[0][0])]
    second_points = [0.0]
    for start, end, mark in boundaries:
        quarter_points.append(float(end))
        second_points.append(second_points[-1] + (float(end) - float(start)) * mark.secondsPerQuarter())
    last_seconds_per_quarter = boundaries[-1][2].secondsPerQuarter()

    def to_seconds(quarters: np.ndarray) -> np.ndarray:
        beyond = np.maximum(quarters - quarter_points[-1], 0.0) * last_seconds_per_quarter
        return np.interp(quarters, quarter_points, second_points) + beyond

    return to_seconds
