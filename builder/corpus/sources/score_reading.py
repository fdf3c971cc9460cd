"""Reading a music21 score as note columns: what the ``chorales`` and ``scores`` corpora share.

Every part at sounding pitch, ties joined, repeats expanded the way music21's own MIDI export does it, seconds
from the score's metronome marks. Expanding repeats (``Score.expandRepeats`` deep-copies every part) is most of
the time, so when the parts' measures line up and the tempo does not change, only the first part is expanded
and its measure order is applied to every part (the fast path).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np


class PartColumns(NamedTuple):
    """A score's notes as columns: onset and offset in seconds, MIDI key, the index of the part each note is in,
    and the number of parts."""

    onset: np.ndarray
    offset: np.ndarray
    key: np.ndarray
    part: np.ndarray
    parts: int


def score_columns(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Sounding notes of a score file as (onset seconds, offset seconds, MIDI key, number of parts)."""
    from music21 import converter

    score = converter.parse(str(path), forceSource=True)
    return notes_of_score(score)


def notes_of_score(score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(onset s, offset s, key, parts) of a music21 score, ties joined, repeats expanded, at sounding pitch."""
    columns = part_columns(score)
    return columns.onset, columns.offset, columns.key, columns.parts


def part_columns(
    score: Any,
    expand_repeats: bool = True,
    unmarked_seconds_per_quarter: float | None = None,
) -> PartColumns:
    """The notes of a music21 score, part by part, ties joined, at sounding pitch.

    ``expand_repeats=False`` reads the score as written (for scores whose repeats music21 cannot expand).
    ``unmarked_seconds_per_quarter``: the tempo of a score, or of its opening, that has no metronome mark (and
    of a mark that gives no tempo); ``None`` keeps music21's default (quarter = 120).
    """
    if any(part.atSoundingPitch is False for part in score.parts):
        score = score.toSoundingPitch()
    plan = _measure_plan(score) if expand_repeats else None
    rows: list[list[float]] = []
    part_sizes: list[int] = []
    if plan is None:
        if expand_repeats and has_repeats(score):
            score = score.expandRepeats()
        for part in score.parts:
            _append_tied_notes([(float(element.offset), element) for element in part.flatten().notes], rows)
            part_sizes.append(len(rows) - sum(part_sizes))
    else:
        for part in score.parts:
            _append_tied_notes(_part_in_order(part, plan), rows)
            part_sizes.append(len(rows) - sum(part_sizes))
    quarters = np.array(rows, dtype=np.float64).reshape(-1, 3)
    to_seconds = _quarters_to_seconds(score, unmarked_seconds_per_quarter)
    part = np.repeat(np.arange(len(part_sizes), dtype=np.int64), part_sizes)
    return PartColumns(
        to_seconds(quarters[:, 0]), to_seconds(quarters[:, 1]), quarters[:, 2].astype(np.int64), part, len(score.parts)
    )


def notes_as_written(score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(onset s, offset s, key, parts) of a score as it stands: repeats not expanded (or expanded already)."""
    columns = part_columns(score, expand_repeats=False)
    return columns.onset, columns.offset, columns.key, columns.parts


def has_repeats(score: Any) -> bool:
    """Whether the score (its first part) has repeat barlines or repeat expressions (da capo, segno...)."""
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

    if not len(score.parts) or not has_repeats(score) or len(score.metronomeMarkBoundaries()) != 1:
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


def _quarters_to_seconds(
    score: Any, unmarked_seconds_per_quarter: float | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Piecewise-linear map from quarter-note offsets to seconds following the score's metronome marks.

    Without ``unmarked_seconds_per_quarter`` a region without a mark is music21's default (quarter = 120);
    with it, that tempo replaces the default (a score or an opening without a mark) and a mark that gives no
    tempo (a mark without a number).
    """
    boundaries = score.metronomeMarkBoundaries()
    if unmarked_seconds_per_quarter is None:
        seconds_per_quarter = [mark.secondsPerQuarter() for _, _, mark in boundaries]
    else:
        seconds_per_quarter = _marked_seconds_per_quarter(score, boundaries, unmarked_seconds_per_quarter)
    quarter_points = [float(boundaries[0][0])]
    second_points = [0.0]
    for (start, end, _), region_seconds_per_quarter in zip(boundaries, seconds_per_quarter):
        quarter_points.append(float(end))
        second_points.append(second_points[-1] + (float(end) - float(start)) * region_seconds_per_quarter)
    last_seconds_per_quarter = seconds_per_quarter[-1]

    def to_seconds(quarters: np.ndarray) -> np.ndarray:
        beyond = np.maximum(quarters - quarter_points[-1], 0.0) * last_seconds_per_quarter
        return np.interp(quarters, quarter_points, second_points) + beyond

    return to_seconds


def _marked_seconds_per_quarter(score: Any, boundaries: list[Any], unmarked: float) -> list[float]:
    from music21 import tempo

    flat = score.flatten()
    marks = flat.getElementsByClass(tempo.TempoIndication)
    first_mark = min((float(mark.getOffsetBySite(flat)) for mark in marks), default=float("inf"))
    values: list[float] = []
    for index, (start, _, mark) in enumerate(boundaries):
        if index == 0 and float(start) < first_mark:  # music21's default for a region without a mark
            values.append(unmarked)
            continue
        try:
            values.append(float(mark.secondsPerQuarter()))
        except tempo.TempoException:  # a mark without a number (MetronomeMarkException is one)
            values.append(unmarked)
    return values
