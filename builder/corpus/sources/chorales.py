"""The built-in ``chorales`` corpus: the Bach chorales shipped inside the music21 wheel, as piano notes.

Only the chorales are used: music21's other pieces (and Bach's WTC prelude BWV 846 filed among the chorales)
are reserved for evaluation and must never be trained on. Each score is read directly (no MIDI round trip,
:mod:`builder.corpus.sources.score_reading`, shared with the ``scores`` corpus):
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
from builder.corpus.sources import score_reading
from pianoscribe.errors import UserError

GENERATOR_VERSION = 2  # 2: the two chorales filed as .xml are included
MUSICXML_SUFFIXES = (".mxl", ".xml")
NOT_CHORALES = frozenset({"bwv846"})  # Well-Tempered Clavier I, Prelude in C: filed under bach/, not a chorale
MIN_VOICES = 4
VELOCITY_LEVELS = (64, 100)
VELOCITY_JITTER = 6.0
MAX_WORKERS = 2

# the score reading, shared with the ``scores`` corpus, under the names tests and benchmarks use here
score_columns = score_reading.score_columns
notes_of_score = score_reading.notes_of_score
_has_repeats = score_reading.has_repeats
_notes_of_expanded_score = score_reading.notes_as_written


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
