"""trainer.evaluate: the scores mean what they say (mir_eval on the 1024-hop grid, onsets within 50 ms)."""

from __future__ import annotations

import numpy as np
import pytest

from builder.corpus import NOTE_DTYPE
from pianoscribe.constants import HOP_SECONDS
from trainer.evaluation.scoring import score_piece, score_pieces


def notes_of(rows) -> np.ndarray:
    return np.array(rows, dtype=NOTE_DTYPE)


REFERENCE = notes_of([(0.10, 0.60, 60, 80), (0.10, 0.60, 64, 80), (0.70, 1.20, 67, 90), (1.00, 1.50, 48, 70)])
N_FRAMES = int(np.ceil(1.6 / HOP_SECONDS))


def test_a_perfect_transcription_scores_one() -> None:
    scores = score_piece(REFERENCE, REFERENCE, N_FRAMES)
    for name in ("frame_precision", "frame_recall", "frame_f1", "note_precision", "note_recall", "note_f1"):
        assert scores[name] == pytest.approx(1.0)


def test_onsets_count_within_50_ms_and_offsets_do_not_matter() -> None:
    estimate = np.array(REFERENCE, copy=True)
    estimate["onset"] += [0.03, -0.045, 0.06, 0.0]  # two within 50 ms, one outside, one exact
    estimate["offset"] = estimate["onset"] + 0.05  # far too short: frames suffer, onsets do not
    scores = score_piece(REFERENCE, estimate, N_FRAMES)
    assert scores["note_precision"] == pytest.approx(0.75) and scores["note_recall"] == pytest.approx(0.75)
    assert scores["frame_recall"] < 0.3


def test_wrong_pitch_and_extra_notes() -> None:
    estimate = np.concatenate([REFERENCE[:3], notes_of([(1.0, 1.5, 49, 70), (0.3, 0.5, 90, 60)])])
    scores = score_piece(REFERENCE, estimate, N_FRAMES)
    assert scores["note_recall"] == pytest.approx(3 / 4) and scores["note_precision"] == pytest.approx(3 / 5)
    assert 0.5 < scores["frame_f1"] < 1.0


def test_silence_scores_zero_without_crashing() -> None:
    scores = score_piece(REFERENCE, notes_of([]), N_FRAMES)
    assert scores["note_f1"] == 0.0 and scores["frame_f1"] == 0.0 and scores["estimated_notes"] == 0


def test_overall_pools_every_note_of_every_piece() -> None:
    good, bad = REFERENCE, notes_of([(0.1, 0.6, 60, 80)])  # the second piece finds one note of four
    scores = score_pieces([REFERENCE, REFERENCE], [good, bad], [N_FRAMES, N_FRAMES], ["a", "b"])
    assert scores["pieces"]["a"]["note_recall"] == pytest.approx(1.0)
    assert scores["pieces"]["b"]["note_recall"] == pytest.approx(0.25)
    assert scores["overall"]["note_recall"] == pytest.approx(5 / 8)
    assert scores["overall"]["note_precision"] == pytest.approx(1.0)
    assert scores["overall"]["reference_notes"] == 8 and scores["overall"]["pieces"] == 2


def test_registers_split_the_frame_counts() -> None:
    estimate = np.concatenate([REFERENCE[:3], notes_of([(0.3, 0.5, 90, 60)])])  # misses C3, adds F#6
    registers = score_pieces([REFERENCE], [estimate], [N_FRAMES], ["a"])["frame_f1_by_register"]
    assert next(iter(registers)) == "A0-G#1" and list(registers)[-1] == "A7-C8"
    assert registers["A2-G#3"]["frame_recall"] == 0.0 and registers["A2-G#3"]["reference_frames"] > 0  # C3 = 48
    assert registers["A3-G#4"]["frame_f1"] == pytest.approx(1.0)  # C4, E4, G4
    assert registers["A5-G#6"]["frame_precision"] == 0.0  # F#6 = 90


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_evaluate_renders_the_test_split_transcribes_and_scores(piano_model, monkeypatch) -> None:
    """``trainer evaluate`` as a user runs it, from the folder that holds data/ (the session's trained model)."""
    import json

    from typer.testing import CliRunner

    from builder.dataset.store import open_store
    from trainer.cli import app
    from trainer.evaluation.pieces import read_test_pieces

    monkeypatch.chdir(piano_model.root)
    arguments = [
        "evaluate",
        "--model",
        str(piano_model.model),
        "--data",
        "data/dataset.zarr",
        "--pieces",
        "2",
        "--max-seconds",
        "4",
    ]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "overall (2 pieces" in result.output

    scores = json.loads((piano_model.root / "metrics" / "eval.json").read_text())
    test_split = set(open_store(piano_model.store).attrs["split"]["test"])
    assert len(scores["pieces"]) == 2 and set(scores["pieces"]) <= test_split
    overall = scores["overall"]
    assert overall["reference_notes"] == sum(piece["reference_notes"] for piece in scores["pieces"].values())
    assert overall["frame_f1"] > 0.6 and overall["note_f1"] > 0.5  # the tiny model does learn its tiny world
    assert (piano_model.root / "metrics" / "eval_roll.png").stat().st_size > 10_000

    pieces = read_test_pieces(piano_model.data_dir / "eval")
    assert [piece.piece_id for piece in pieces] == list(scores["pieces"])
    assert all(piece.notes["onset"].max() < 4.0 for piece in pieces)
    first_audio = pieces[0].audio_path.read_bytes()
    assert CliRunner().invoke(app, arguments).exit_code == 0
    assert pieces[0].audio_path.read_bytes() == first_audio  # rendering is deterministic
