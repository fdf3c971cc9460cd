"""trainer.outputs: the files of a transcription agree with each other and read back."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.image
import numpy as np
import pretty_midi

from builder.corpus import NOTE_DTYPE
from trainer.inference.outputs import CSV_COLUMNS, read_csv, write_roll_comparison_png, write_transcription


def some_notes() -> np.ndarray:
    return np.array(
        [(0.0116, 0.5, 21, 30), (0.25, 1.75, 60, 100), (0.25, 0.9, 64, 90), (1.2, 2.0, 108, 127)], dtype=NOTE_DTYPE
    )


def frames_of(n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    times = np.arange(n_frames) * 1024 / 44100
    return (
        rng.uniform(0, 1, (n_frames, 88)).astype(np.float32),
        rng.uniform(0, 1, (n_frames, 88)).astype(np.float32),
        times,
    )


def test_three_files_or_four_with_png_and_midi_reads_back_as_the_csv(tmp_path: Path) -> None:
    notes = some_notes()
    amplitude, probability, times = frames_of(100)
    written = write_transcription(tmp_path / "plain", notes, amplitude, probability, times)
    assert [path.name for path in written] == ["plain.mid", "plain.csv", "plain.npz"]
    written = write_transcription(tmp_path / "song", notes, amplitude, probability, times, title="song", png=True)
    assert [path.name for path in written] == ["song.mid", "song.csv", "song.npz", "song.png"]
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporaries left

    from_csv = read_csv(tmp_path / "song.csv")
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "song.mid"))
    from_midi = sorted(
        ((note.start, note.end, note.pitch, note.velocity) for note in midi.instruments[0].notes),
        key=lambda note: (note[0], note[2]),
    )
    assert len(from_midi) == len(from_csv) == len(notes)
    for (start, end, pitch, velocity), row in zip(from_midi, from_csv):
        assert (pitch, velocity) == (row["key"], row["velocity"])
        assert abs(start - row["onset"]) < 2e-3 and abs(end - row["offset"]) < 2e-3  # MIDI ticks


def test_csv_columns_and_key_numbers(tmp_path: Path) -> None:
    amplitude, probability, times = frames_of(10)
    write_transcription(tmp_path / "song", some_notes(), amplitude, probability, times)
    with open(tmp_path / "song.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    keys_and_pitches = [(int(row[2]), int(row[3])) for row in rows[1:]]
    assert keys_and_pitches == [(1, 21), (40, 60), (44, 64), (88, 108)]  # A0 is key 1, middle C key 40, C8 key 88


def test_npz_holds_the_frames(tmp_path: Path) -> None:
    amplitude, probability, times = frames_of(37)
    write_transcription(tmp_path / "song", some_notes(), amplitude, probability, times)
    with np.load(tmp_path / "song.npz") as arrays:
        np.testing.assert_array_equal(arrays["amplitude"], amplitude)
        np.testing.assert_array_equal(arrays["probability"], probability)
        np.testing.assert_array_equal(arrays["frame_times"], times)


def test_pngs_are_images(tmp_path: Path) -> None:
    amplitude, probability, times = frames_of(200)
    write_transcription(tmp_path / "song", some_notes(), amplitude, probability, times, png=True)
    write_roll_comparison_png(tmp_path / "both.png", amplitude, probability, times, "reference", "transcription")
    roll, both = matplotlib.image.imread(tmp_path / "song.png"), matplotlib.image.imread(tmp_path / "both.png")
    assert roll.shape[1] > roll.shape[0] > 300  # landscape, big enough to read
    assert both.shape[0] > roll.shape[0]  # two panels stacked


def test_empty_transcription_still_writes_everything(tmp_path: Path) -> None:
    amplitude, probability, times = frames_of(1)
    written = write_transcription(tmp_path / "quiet", np.zeros(0, NOTE_DTYPE), amplitude, probability, times, png=True)
    assert all(path.stat().st_size > 0 for path in written)
    assert len(read_csv(tmp_path / "quiet.csv")) == 0
