"""trainer.evaluate: the scores mean what they say (mir_eval on the 1024-hop grid, onsets within 50 ms)."""

from __future__ import annotations

import numpy as np
import pytest

from builder.corpus import NOTE_DTYPE
from pianoscribe.constants import HOP_SECONDS
from pianoscribe.errors import UserError
from trainer.evaluation import matching
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


def random_notes(rng: np.random.Generator, count: int, seconds: float) -> np.ndarray:
    onsets = rng.uniform(0.0, seconds, count)
    return notes_of(
        [
            (onset, onset + length, key, velocity)
            for onset, length, key, velocity in zip(
                onsets, rng.uniform(0.02, 1.5, count), rng.integers(21, 109, count), rng.integers(1, 128, count)
            )
        ]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_scores_are_mir_evals_own(seed: int) -> None:
    """Frame counts on the rolls and note-onset scores from one match equal mir_eval's own functions."""
    import mir_eval
    import mir_eval.transcription_velocity

    from pianoscribe.keyboard import key_frequency
    from trainer.inference.decode import notes_to_roll

    rng = np.random.default_rng(seed)
    reference = random_notes(rng, 200, 20.0)
    estimate = np.concatenate([reference[:150], random_notes(rng, 80, 20.0)])
    estimate["onset"][:150] += rng.uniform(-0.08, 0.08, 150)  # some within 50 ms, some not
    estimate["offset"][:150] += rng.uniform(-0.2, 0.2, 150)  # some within the offset rule, some not
    estimate["offset"] = np.maximum(estimate["offset"], estimate["onset"] + 0.01)
    n_frames = int(np.ceil(21.0 / HOP_SECONDS))
    scores = score_piece(reference, estimate, n_frames)

    key_hz = np.array([key_frequency(key) for key in range(21, 109)])
    centres = (np.arange(n_frames) + 0.5) * HOP_SECONDS
    reference_hz, estimate_hz = (
        [key_hz[np.flatnonzero(row)] for row in notes_to_roll(notes, n_frames, values="binary")]
        for notes in (reference, estimate)
    )
    frames = mir_eval.multipitch.evaluate(centres, list(reference_hz), centres, list(estimate_hz))
    assert scores["frame_precision"] == frames["Precision"] and scores["frame_recall"] == frames["Recall"]

    def intervals_and_hz(notes):
        intervals = np.stack([notes["onset"], np.maximum(notes["offset"], notes["onset"] + 1e-3)], axis=1)
        return intervals, np.array([key_frequency(int(key)) for key in notes["key"]])

    both = (*intervals_and_hz(reference), *intervals_and_hz(estimate))
    precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        *both, onset_tolerance=0.05, offset_ratio=None
    )
    assert (scores["note_precision"], scores["note_recall"], scores["note_f1"]) == (precision, recall, f1)
    assert 0.3 < f1 < 0.9  # the case is not trivial
    _, _, offset_f1, _ = mir_eval.transcription.precision_recall_f1_overlap(*both, onset_tolerance=0.05)
    assert scores["note_offset_f1"] == offset_f1 and 0.0 < offset_f1 < f1
    velocities = reference["velocity"].astype(float), estimate["velocity"].astype(float)
    _, _, velocity_f1, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
        both[0], both[1], velocities[0], both[2], both[3], velocities[1], onset_tolerance=0.05, offset_ratio=None
    )
    assert scores["note_velocity_f1"] == velocity_f1

    for offset_ratio in (None, 0.2):  # the very pairs, not only as many
        expected = mir_eval.transcription.match_notes(*both, onset_tolerance=0.05, offset_ratio=offset_ratio)
        got = matching.match_notes(
            both[0], reference["key"], both[2], estimate["key"], onset_tolerance=0.05, offset_ratio=offset_ratio
        )
        assert [tuple(map(int, pair)) for pair in expected] == got


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
def test_evaluate_renders_kinds_through_unheard_pianos_and_scores(piano_model, monkeypatch, tmp_path) -> None:
    """``trainer evaluate`` as a user runs it, from the folder that holds data/ (the session's trained model): every
    chosen test piece through every evaluation piano, a tune and a report set, a summary and the detail."""
    import json
    import shutil

    import yaml
    from typer.testing import CliRunner

    from builder import banks
    from builder.dataset.store import open_store
    from tests.conftest import PIANO_KEYS
    from trainer.cli import app
    from trainer.evaluation.pieces import read_test_pieces

    monkeypatch.chdir(piano_model.root)
    heldout = piano_model.data_dir / "banks" / "heldout.h5"  # the tiny piano under a name no training bank has
    shutil.copy(piano_model.bank, heldout)
    banks.write_bank(
        banks.build_bank("modal-5", settings={"layers": 2, "max_seconds": 1.0}, keys=PIANO_KEYS),
        piano_model.data_dir / "banks" / "tinymodal.h5",
    )
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "evaluate": {
                    "pianos": ["heldout", "tinymodal"],
                    "kinds": [{"name": "chords", "prefixes": ["chords/"]}],
                    "pieces_per_kind": 1,
                    "max_seconds": 4.0,
                }
            }
        )
    )
    arguments = ["evaluate", "--model", str(piano_model.model), "--data", "data/dataset.zarr", "--params", str(params)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "report: held-out pieces nothing was chosen on" in result.output and "chords" in result.output

    summary = json.loads((piano_model.root / "metrics" / "eval.json").read_text())
    assert set(summary["report"]) == {"chords", "all", "frame_f1_by_octave"}
    assert set(summary["report"]["chords"]) == {"heldout", "tinymodal", "all"}
    assert set(summary["report"]["all"]["all"]) == {"frame_f1", "note_f1", "note_offset_f1", "velocity_mae"}
    assert summary["report"]["chords"]["heldout"]["frame_f1"] > 0.6  # the tiny model learned its tiny piano
    detail = json.loads((piano_model.root / "metrics" / "eval_pieces.json").read_text())
    test_split = set(open_store(piano_model.store).attrs["split"]["test"])
    assert len(detail["pieces"]) == 4 and {piece["piece_id"] for piece in detail["pieces"]} <= test_split
    assert {(piece["purpose"], piece["bank"]) for piece in detail["pieces"]} == {
        (purpose, bank) for purpose in ("tune", "report") for bank in ("heldout", "tinymodal")
    }
    assert (piano_model.root / "metrics" / "eval_roll.png").stat().st_size > 10_000

    pieces = read_test_pieces(piano_model.data_dir / "eval")
    assert [piece.audio_path.name for piece in pieces] == [piece["audio"] for piece in detail["pieces"]]
    assert all(piece.notes["onset"].max() < 4.0 for piece in pieces)
    first_audio = pieces[0].audio_path.read_bytes()
    assert CliRunner().invoke(app, arguments).exit_code == 0
    assert pieces[0].audio_path.read_bytes() == first_audio  # rendering is deterministic


def test_pieces_are_chosen_by_kind_and_purpose_spread_over_collections() -> None:
    from trainer.evaluation.pieces import choose_pieces

    test_ids = [f"scores/beethoven/{i}" for i in range(10)] + [f"scores/corelli/{i}" for i in range(2)]
    test_ids += [f"chorales/bwv{i}" for i in range(5)]
    chosen = choose_pieces(test_ids, {"scores": ["scores/"], "chorales": ["chorales/"]}, per_kind=2)
    scores = [(purpose, piece_id) for kind, purpose, piece_id in chosen if kind == "scores"]
    assert [purpose for purpose, _ in scores] == ["tune", "tune", "report", "report"]
    assert {piece_id.split("/")[1] for _, piece_id in scores[:2]} == {"beethoven", "corelli"}  # round-robin
    assert len({piece_id for _, _, piece_id in chosen}) == len(chosen)
    assert chosen == choose_pieces(list(reversed(test_ids)), {"scores": ["scores/"], "chorales": ["chorales/"]}, 2)
    with pytest.raises(UserError, match="evaluate.kinds.folk"):
        choose_pieces(test_ids, {"folk": ["folk/"]}, 1)
