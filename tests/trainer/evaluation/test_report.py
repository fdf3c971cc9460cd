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
