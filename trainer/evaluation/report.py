"""The few numbers a person wants after ``make run``: test-split scores from fit, held-out scores from evaluate.

``dvc metrics show`` prints every key of every metrics file (per piece, per register) in one very wide table;
this prints the headline instead. Run as ``python -m trainer.report [METRICS_DIR]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


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
        overall = json.loads(eval_path.read_text())["overall"]
        lines.append(
            f"evaluate ({overall['pieces']} held-out pieces, {overall['audio_seconds']:.0f} s of audio): "
            f"frame P/R/F1 {overall['frame_precision']:.3f}/{overall['frame_recall']:.3f}/"
            f"{overall['frame_f1']:.3f}, note-onset P/R/F1 {overall['note_precision']:.3f}/"
            f"{overall['note_recall']:.3f}/{overall['note_f1']:.3f}, "
            f"{overall['speed_x_realtime']:.0f}x realtime"
        )
    else:
        lines.append(f"{eval_path}: not written yet")
    return lines


if __name__ == "__main__":
    print("\n".join(run_summary(Path(sys.argv[1] if len(sys.argv) > 1 else "metrics"))))
