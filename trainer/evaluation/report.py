"""The numbers a person wants after ``make run`` or ``trainer evaluate``: tables, not ``dvc metrics show``'s columns.

Run as ``python -m trainer.evaluation.report [METRICS_DIR]`` (``make run`` does) for the test-split scores of
the fit and the held-out evaluation's report table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PURPOSE_TITLES = {
    "report": "held-out pieces nothing was chosen on",
    "tune": "held-out pieces recipes and thresholds were chosen on",
}


def summary_lines(summary: dict[str, Any], purposes: tuple[str, ...] = ("report", "tune")) -> list[str]:
    """A table per purpose (kind of music x piano: frame F1, note-onset F1, note-with-offset F1, velocity error)
    and the frame F1 per octave."""
    lines = []
    for purpose in purposes:
        table = summary.get(purpose)
        if not table:
            continue
        lines.append(f"{purpose}: {PURPOSE_TITLES.get(purpose, purpose)}")
        lines.append(f"  {'kind':12s} {'piano':12s} {'frame F1':>9s} {'note F1':>8s} {'+offset':>8s} {'vel err':>8s}")
        for kind, by_piano in table.items():
            if kind == "frame_f1_by_octave":
                continue
            for piano, scores in by_piano.items():
                lines.append(
                    f"  {kind:12s} {piano:12s} {scores['frame_f1']:9.3f} {scores['note_f1']:8.3f} "
                    f"{scores['note_offset_f1']:8.3f} {scores['velocity_mae']:8.1f}"
                )
        octaves = table.get("frame_f1_by_octave", {})
        lines.append("  frame F1 by octave: " + "  ".join(f"{name} {value:.2f}" for name, value in octaves.items()))
    if "speed_x_realtime" in summary:
        lines.append(f"{summary.get('audio_seconds', 0):.0f} s of audio at {summary['speed_x_realtime']}x realtime")
    return lines


def run_summary(metrics_dir: Path) -> list[str]:
    """Lines describing ``fit.json`` and ``eval.json`` in ``metrics_dir`` (a line saying so for a missing one)."""
    lines = []
    fit_path, eval_path = metrics_dir / "fit.json", metrics_dir / "eval.json"
    if fit_path.is_file():
        fit = json.loads(fit_path.read_text())
        lines.append(
            f"fit ({fit.get('arch')}, {fit.get('epochs')} epochs, {fit.get('train_seconds', 0):.0f} s): "
            f"test split frame F1 {fit['val_frame_f1']:.3f}, onset F1 {fit['val_onset_f1']:.3f}, "
            f"energy MAE {fit['val_energy_mae']:.3f}"
        )
    else:
        lines.append(f"{fit_path}: not written yet")
    if eval_path.is_file():
        lines.extend(summary_lines(json.loads(eval_path.read_text()), purposes=("report",)))
    else:
        lines.append(f"{eval_path}: not written yet")
    return lines


if __name__ == "__main__":
    print("\n".join(run_summary(Path(sys.argv[1] if len(sys.argv) > 1 else "metrics"))))
