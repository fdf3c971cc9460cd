"""Writing a transcription: ``NAME.mid``, ``NAME.csv``, ``NAME.npz`` and, when asked, the ``NAME.png`` piano roll.

The picture is optional because drawing it with matplotlib (imported only then) costs more than transcribing
the recording (docs/inference.md). Notes are the corpus's ``NOTE_DTYPE`` rows (onset/offset seconds, MIDI key
21..108, velocity 1..127), so a transcription can be compared with, or fed back into, anything that reads
corpora. Every file goes through ``pianoscribe.atomic.atomic_path``: a reader never sees half a file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pretty_midi

from builder.corpus.notes import NOTE_DTYPE
from pianoscribe.atomic import atomic_path, atomic_paths
from pianoscribe.constants import BUFFER_SIZE, LOWEST_KEY, N_KEYS, SAMPLE_RATE
from pianoscribe.keyboard import note_name

if TYPE_CHECKING:
    from trainer.inference.transcribe import Transcription

CSV_COLUMNS = ("onset_s", "offset_s", "key", "midi_pitch", "velocity")
OUTPUT_SUFFIXES = (".mid", ".csv", ".npz")  # always written
PNG_SUFFIX = ".png"  # the piano-roll picture, when asked for
ACOUSTIC_GRAND_PIANO = 0
ROLL_COLORMAP = "magma"
SILENT, AGREE, MISSED, EXTRA = 0, 1, 2, 3  # cell categories of the comparison picture
COMPARISON_COLOURS = ["#000000", "#e8e8e8", "#f28e2b", "#e15759"]
MAX_ROLL_COLUMNS = 2400  # about one image pixel per column at the widest figure


def write_transcription(
    stem: Path,
    notes: np.ndarray,
    amplitude: np.ndarray,
    probability: np.ndarray,
    frame_times: np.ndarray,
    title: str | None = None,
    extra_arrays: dict[str, np.ndarray] | None = None,
    png: bool = False,
) -> list[Path]:
    """The outputs of one recording, ``stem.{mid,csv,npz}`` and with ``png`` ``stem.png``, appearing together or
    not at all (a full disk half way leaves none of them); returns the paths written."""
    stem = Path(stem)
    paths = output_paths(stem, png)
    with atomic_paths(paths) as temporaries:
        _save_midi(notes, temporaries[0])
        _save_csv(notes, temporaries[1])
        _save_frames(temporaries[2], amplitude, probability, frame_times, extra_arrays)
        if png:
            _save_piano_roll_png(temporaries[3], amplitude, frame_times, title=title or stem.name)
    return paths


def output_paths(stem: Path, png: bool = False) -> list[Path]:
    """Where the outputs of ``stem`` go: ``stem.mid``, ``stem.csv``, ``stem.npz`` (and ``stem.png`` with ``png``)."""
    return [stem.with_name(stem.name + suffix) for suffix in OUTPUT_SUFFIXES + ((PNG_SUFFIX,) if png else ())]


def write_outputs(stem: Path, transcription: Transcription, title: str, png: bool = False) -> list[Path]:
    """``write_transcription`` of a ``Transcription``, with the onset head's probabilities in the ``.npz``."""
    return write_transcription(
        stem,
        transcription.notes,
        transcription.amplitude,
        transcription.probability,
        transcription.frame_times,
        title=title,
        extra_arrays={"onset_probability": transcription.onset_probability},
        png=png,
    )


def _save_midi(notes: np.ndarray, path: Path) -> None:
    """One piano track; times in seconds are kept exactly by pretty_midi's default tempo map."""
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=ACOUSTIC_GRAND_PIANO, name="piano")
    for note in notes:
        piano.notes.append(
            pretty_midi.Note(
                velocity=int(note["velocity"]),
                pitch=int(note["key"]),
                start=float(note["onset"]),
                end=float(note["offset"]),
            )
        )
    midi.instruments.append(piano)
    midi.write(str(path))


def write_csv(notes: np.ndarray, path: Path) -> None:
    """``onset_s, offset_s, key, midi_pitch, velocity``; ``key`` is the piano key number 1..88 (A0 = 1)."""
    with atomic_path(path) as temporary:
        _save_csv(notes, temporary)


def _save_csv(notes: np.ndarray, path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for note in notes:
            midi_pitch = int(note["key"])
            writer.writerow(
                [
                    f"{float(note['onset']):.6f}",
                    f"{float(note['offset']):.6f}",
                    midi_pitch - LOWEST_KEY + 1,
                    midi_pitch,
                    int(note["velocity"]),
                ]
            )


def read_csv(path: Path) -> np.ndarray:
    """The notes of a ``NAME.csv`` back as ``NOTE_DTYPE`` rows (for tests and for comparing runs)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    notes = np.zeros(len(rows), dtype=NOTE_DTYPE)
    for index, row in enumerate(rows):
        notes[index] = (float(row["onset_s"]), float(row["offset_s"]), int(row["midi_pitch"]), int(row["velocity"]))
    return notes


def _save_frames(
    path: Path,
    amplitude: np.ndarray,
    probability: np.ndarray,
    frame_times: np.ndarray,
    extra_arrays: dict[str, np.ndarray] | None = None,
) -> None:
    """Per-frame model outputs for downstream tools: ``amplitude``/``probability`` ``[frames, 88]``, ``frame_times``.

    Stored uncompressed: zlib took longer than transcribing (0.2 s for a 30 s recording) to save about half of
    ~1.4 MB."""
    arrays: dict[str, Any] = {
        "amplitude": np.asarray(amplitude, np.float32),
        "probability": np.asarray(probability, np.float32),
        "frame_times": np.asarray(frame_times, np.float64),
        **(extra_arrays or {}),
    }
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _save_piano_roll_png(
    path: Path,
    amplitude: np.ndarray,
    frame_times: np.ndarray,
    title: str,
    colorbar_label: str = "amplitude (model energy head)",
) -> None:
    """The 88 amplitude values over time: seconds across, note names up, a colour bar for the scale."""
    plt = _pyplot()
    seconds = _roll_seconds(frame_times)
    figure, axes = plt.subplots(figsize=(_roll_width_inches(seconds), 5.5), constrained_layout=True)
    # the top of the scale at a high percentile, not the maximum: a few loud attacks must not make the rest dark
    amplitude = np.asarray(amplitude, np.float32)
    top = max(float(np.percentile(amplitude, 99.8)) if amplitude.size else 0.0, 1e-3)
    image = _draw_roll(axes, amplitude, frame_times, title, vmax=top)
    figure.colorbar(image, ax=axes, label=colorbar_label, pad=0.01, fraction=0.03, extend="max")
    _figure_to_png(figure, path)


def write_roll_comparison_png(
    path: Path,
    reference_roll: np.ndarray,
    estimated_roll: np.ndarray,
    frame_times: np.ndarray,
    reference_title: str,
    estimated_title: str,
) -> None:
    """Reference above, transcription below, same time axis; every (frame, key) cell coloured by agreement.

    Above: notes found (light) and missed (orange); below: notes right (light) and extra (red). Rolls are
    read as "sounding" where > 0, so velocity scales cannot make one panel look emptier than it is.
    """
    import matplotlib.colors
    import matplotlib.patches

    plt = _pyplot()
    reference_on, estimated_on = np.asarray(reference_roll) > 0, np.asarray(estimated_roll) > 0
    upper_cells = np.where(reference_on, np.where(estimated_on, AGREE, MISSED), SILENT)
    lower_cells = np.where(estimated_on, np.where(reference_on, AGREE, EXTRA), SILENT)
    seconds = _roll_seconds(frame_times)
    figure, (upper, lower) = plt.subplots(
        2, 1, figsize=(_roll_width_inches(seconds), 9.0), sharex=True, constrained_layout=True
    )
    categories = matplotlib.colors.ListedColormap(COMPARISON_COLOURS)
    _draw_roll(
        upper, upper_cells, frame_times, reference_title, vmax=len(COMPARISON_COLOURS) - 0.5, cmap=categories, vmin=-0.5
    )
    _draw_roll(
        lower, lower_cells, frame_times, estimated_title, vmax=len(COMPARISON_COLOURS) - 0.5, cmap=categories, vmin=-0.5
    )
    upper.set_xlabel("")
    legend = [
        matplotlib.patches.Patch(color=COMPARISON_COLOURS[AGREE], label="in both"),
        matplotlib.patches.Patch(color=COMPARISON_COLOURS[MISSED], label="missed (reference only)"),
        matplotlib.patches.Patch(color=COMPARISON_COLOURS[EXTRA], label="extra (transcription only)"),
    ]
    figure.legend(handles=legend, loc="outside upper right", ncols=3, frameon=False)
    _save_figure(figure, path)


def _pyplot():
    """matplotlib's pyplot on the Agg backend (files only: never a window, never a display), imported on first use:
    importing it costs more than writing the other three outputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def _draw_roll(
    axes,
    roll: np.ndarray,
    frame_times: np.ndarray,
    title: str,
    vmax: float | None = None,
    cmap=ROLL_COLORMAP,
    vmin: float = 0.0,
):
    roll = np.asarray(roll, np.float32)
    if roll.ndim != 2 or roll.shape[1] != N_KEYS:
        raise ValueError(f"piano roll: expected [frames, {N_KEYS}], got {list(roll.shape)}")
    hop = float(frame_times[1] - frame_times[0]) if len(frame_times) > 1 else BUFFER_SIZE / SAMPLE_RATE
    start = float(frame_times[0]) if len(frame_times) else 0.0
    end = start + hop * max(roll.shape[0], 1)
    roll = _max_pooled_in_time(roll, MAX_ROLL_COLUMNS)
    if vmax is None:
        vmax = max(float(np.max(roll, initial=0.0)), 1e-6)
    image = axes.imshow(
        roll.T,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        extent=(start, end, LOWEST_KEY - 0.5, LOWEST_KEY + N_KEYS - 0.5),
    )
    c_keys = [key for key in range(LOWEST_KEY, LOWEST_KEY + N_KEYS) if key % 12 == 0]  # C1 .. C8
    axes.set_yticks([LOWEST_KEY, *c_keys], [note_name(key) for key in [LOWEST_KEY, *c_keys]])
    axes.set_yticks(range(LOWEST_KEY, LOWEST_KEY + N_KEYS, 1), minor=True)
    axes.tick_params(axis="y", which="minor", length=2)
    for key in c_keys:
        axes.axhline(key - 0.5, color="white", linewidth=0.3, alpha=0.35)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("key")
    axes.set_title(title)
    return image


def _max_pooled_in_time(roll: np.ndarray, max_columns: int) -> np.ndarray:
    """At most ``max_columns`` frames, each the maximum of a run of frames: a long song's short notes stay
    visible instead of being skipped by image resampling."""
    factor = -(-roll.shape[0] // max_columns)
    if factor <= 1:
        return roll
    padded = np.zeros((-(-roll.shape[0] // factor) * factor, roll.shape[1]), dtype=roll.dtype)
    padded[: roll.shape[0]] = roll
    return padded.reshape(-1, factor, roll.shape[1]).max(axis=1)


def _roll_seconds(frame_times: np.ndarray) -> float:
    return float(frame_times[-1] - frame_times[0]) if len(frame_times) > 1 else 0.0


def _roll_width_inches(seconds: float) -> float:
    """Wide enough to tell notes apart in a short clip, capped so a long song stays a sane image."""
    return float(np.clip(6.0 + seconds / 3.0, 9.0, 28.0))


def _save_figure(figure, path: Path) -> None:
    try:
        with atomic_path(path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=110, format="png")
    finally:
        _pyplot().close(figure)


def _figure_to_png(figure, path: Path) -> None:
    try:
        figure.savefig(path, dpi=110, format="png")
    finally:
        _pyplot().close(figure)
