import json
from pathlib import Path

from trainer.evaluation.report import run_summary


def test_summary_names_the_headline_scores(tmp_path: Path) -> None:
    (tmp_path / "fit.json").write_text(
        json.dumps(
            {
                "arch": "context",
                "epochs": 3,
                "train_seconds": 12.0,
                "val_frame_f1": 0.5,
                "val_onset_f1": 0.25,
                "val_energy_mae": 0.1,
            }
        )
    )
    lines = run_summary(tmp_path)
    assert "frame F1 0.500" in lines[0] and "onset F1 0.250" in lines[0]
    assert "eval.json: not written yet" in lines[1]


def test_the_report_table_has_a_row_per_kind_and_piano(tmp_path: Path) -> None:
    row = {"frame_f1": 0.8, "note_f1": 0.7, "note_offset_f1": 0.4, "velocity_mae": 9.5}
    (tmp_path / "eval.json").write_text(
        json.dumps(
            {
                "report": {
                    "chorales": {"steinway": row, "all": row},
                    "all": {"all": row},
                    "frame_f1_by_octave": {"A0-G#1": 0.1},
                },
                "speed_x_realtime": 300.0,
                "audio_seconds": 120.0,
            }
        )
    )
    lines = run_summary(tmp_path)
    assert any(line.split()[:2] == ["chorales", "steinway"] and "0.800" in line and "9.5" in line for line in lines)
    assert any("A0-G#1 0.10" in line for line in lines)
