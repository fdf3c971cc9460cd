"""The DVC graph is wired: after a fit-only change, only `fit`, `fit_offline` and `evaluate` rerun; after an
offline-only change, only `fit_offline` and `evaluate`.

Runs the real pipeline (`dvc repro`) in a temporary copy of the repository with a tiny params.yaml,
so it exercises every stage's command line end to end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY_PARAMS = {
    "bank": {"layers": 2, "max_seconds": 0.6},
    "corpus": {
        "procedural": {"pieces": 6, "seconds": 8.0, "seed": 0},
        "pianistic": {"pieces": 6, "seconds": 8.0, "seed": 0},
        "scores": {"max_pieces": 6, "max_pieces_per_collection": 1},
        "chorales": {"max_pieces": 12},
    },
    "synth": {
        "n": 4096,
        "frames_per_segment": 8,
        "test_fraction": 0.3,
        "storage": {"chunk_rows": 256, "shard_rows": 1024},
    },
    "fit": {"epochs": 1, "batch_size": 16, "steps_per_epoch": 4, "val_steps": 2},
    "offline": {
        "pieces": 4,
        "seconds": 4.0,
        "width": 4,
        "dilations": [1, 2],
        "epochs": 1,
        "steps_per_epoch": 2,
        "batch_windows": 2,
        "window_frames": 32,
    },
    "decode": {"onset_threshold": 0.75, "frame_threshold": 0.25, "min_note_seconds": 0.05},
    "evaluate": {"pieces_per_kind": 1, "max_seconds": 4.0, "kinds": [{"name": "chorales", "prefixes": ["chorales/"]}]},
}


def _dvc(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="1")
    return subprocess.run([str(BIN / "dvc"), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)


def _stale_stages(workdir: Path) -> set[str]:
    result = _dvc(workdir, "status", "--json")
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout or "{}"))


@pytest.mark.slow
def test_a_change_reruns_only_the_stages_it_touches(tmp_path: Path) -> None:
    workdir = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for relative in filter(None, tracked.decode().split("\0")):
        source = REPO / relative
        if source.is_file():
            target = workdir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    if (REPO / "data" / "cache").is_dir():  # downloaded wheels of the built-in banks: no need to fetch twice
        shutil.copytree(REPO / "data" / "cache", workdir / "data" / "cache")
    (workdir / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"],
    ):
        subprocess.run(["git", *command], cwd=workdir, check=True, capture_output=True)

    first = _dvc(workdir, "repro")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (workdir / "models" / "model.keras").is_file()
    assert (workdir / "models" / "offline.keras").is_file() and (workdir / "models" / "offline.onnx").is_file()
    assert (workdir / "metrics" / "eval.json").is_file() and (workdir / "metrics" / "eval_offline.json").is_file()
    assert _stale_stages(workdir) == set()

    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["fit"]["epochs"] = 2
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    # `dvc status` names the stages whose own inputs changed; evaluate follows from fit's new model
    assert _stale_stages(workdir) == {"fit"}
    second = _dvc(workdir, "repro")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _stages_run(second.stdout) == {"fit", "fit_offline", "evaluate"}
    assert _stale_stages(workdir) == set()

    params["offline"]["steps_per_epoch"] = 3
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    assert _stale_stages(workdir) == {"fit_offline"}
    third = _dvc(workdir, "repro")
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert _stages_run(third.stdout) == {"fit_offline", "evaluate"}
    fourth = _dvc(workdir, "repro")
    assert _stages_run(fourth.stdout) == set()


def _stages_run(repro_output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", repro_output))
