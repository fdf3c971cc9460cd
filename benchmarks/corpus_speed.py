"""How fast are the corpus sources, ours against the obvious baseline? Prints seconds and ratios.

* chorales: our direct score reading (first part's repeat plan, ties joined) against music21's own MIDI export
  read back with pretty_midi (what the reference did), per file, after the same MusicXML parse;
* midi-json: our vectorized reader against following each note buffer by buffer in Python;
* procedural: pieces of 60 s per second.

Usage: ``python benchmarks/corpus_speed.py [chorale files to time, default 40]``.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from builder.corpus import DropCounts, clean_notes
from builder.corpus.sources import chorales, midi_json, procedural

REFERENCE_JSON = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "midi-json" / "bwv1.6.json"


def time_chorales(count: int) -> None:
    import pretty_midi
    from music21 import converter, midi

    files = chorales.chorale_files()[:: max(len(chorales.chorale_files()) // count, 1)][:count]
    parse = direct = export = 0.0
    for path in files:
        started = time.perf_counter()
        score = converter.parse(str(path), forceSource=True)
        parse += time.perf_counter() - started
        started = time.perf_counter()
        chorales.notes_of_score(score)
        direct += time.perf_counter() - started
        started = time.perf_counter()
        pretty_midi.PrettyMIDI(io.BytesIO(midi.translate.streamToMidiFile(score).writestr()))
        export += time.perf_counter() - started
    per_file = {
        name: value / len(files)
        for name, value in [("parse", parse), ("ours", direct), ("music21 MIDI export", export)]
    }
    print(f"chorales ({len(files)} files), seconds per file: " + ", ".join(f"{k} {v:.4f}" for k, v in per_file.items()))
    print(
        f"  notes after parsing: export / ours = {export / direct:.1f}x; whole file: "
        f"{(parse + export) / (parse + direct):.2f}x; all {len(chorales.chorale_files())} files on one core "
        f"~{(parse + direct) / len(files) * len(chorales.chorale_files()):.0f} s"
    )


def naive_midi_json_notes(document: dict) -> list[tuple[int, int, int, int]]:
    """Baseline: follow every note buffer by buffer (open notes listed by key and next slice start)."""
    open_notes: dict[tuple[int, int], list[list[int]]] = {}
    finished: list[tuple[int, int, int, int]] = []
    for buffer_key in sorted(document, key=int):
        buffer_start = int(buffer_key)
        still_open: dict[tuple[int, int], list[list[int]]] = {}
        for event in document[buffer_key]:
            if event["sampleStartIndex"] == 0:
                note = [
                    buffer_start + event["offsetStartIndex"],
                    0,
                    event["pianoNoteNum"] + 20,
                    round(event["velocity"] * 127),
                ]
            else:  # a unison doubling has two open notes under the same (key, slice start)
                note = open_notes[(event["pianoNoteNum"], event["sampleStartIndex"])].pop(0)
            note[1] = buffer_start + event["offsetStartIndex"] + event["sampleEndIndex"] - event["sampleStartIndex"]
            still_open.setdefault((event["pianoNoteNum"], event["sampleEndIndex"]), []).append(note)
        finished.extend(tuple(note) for notes in open_notes.values() for note in notes)
        open_notes = still_open
    finished.extend(tuple(note) for notes in open_notes.values() for note in notes)
    return finished


def _best_of(action, repeats: int = 20):
    """Fastest of several runs (the machine is shared: the minimum is the least disturbed) and the result."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def time_midi_json() -> None:
    if not REFERENCE_JSON.is_file():
        print("midi-json: ../shared/reference/midi-json/bwv1.6.json not present, skipped")
        return
    document = json.loads(REFERENCE_JSON.read_text())
    vectorized, ours = _best_of(lambda: midi_json.notes_from_midi_json_object(document))
    loop, naive = _best_of(lambda: naive_midi_json_notes(document))
    rows = np.array(naive)
    naive_notes = clean_notes(rows[:, 0] / 44100, rows[:, 1] / 44100, rows[:, 2], rows[:, 3])
    same = np.array_equal(naive_notes, ours)
    print(
        f"midi-json bwv1.6 ({len(ours)} notes, parsed JSON -> notes, best of 20): ours {vectorized * 1e3:.1f} ms, "
        f"per-buffer loop {loop * 1e3:.1f} ms, ratio {loop / vectorized:.1f}x, same notes: {same}"
    )


def time_procedural() -> None:
    started = time.perf_counter()
    pieces, _ = procedural.procedural_pieces({"pieces": 60, "seconds": 60.0, "seed": 0}, DropCounts())
    elapsed = time.perf_counter() - started
    notes = sum(len(piece.notes) for piece in pieces)
    print(f"procedural: 60 pieces x 60 s in {elapsed:.2f} s ({len(pieces) / elapsed:.0f} pieces/s, {notes} notes)")


if __name__ == "__main__":
    time_procedural()
    time_midi_json()
    time_chorales(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
