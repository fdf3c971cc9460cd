"""``trainer fit --strategy``: mirrored over the visible GPUs (on this CPU-only machine: one replica on the CPU, said
in one line), the global batch and learning rate of R replicas, an unknown strategy refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pianoscribe.errors import UserError
from tests.trainer.fit.test_fit import tiny_fit_settings
from trainer import fit as fit_module
from trainer.fit.distribution import Distribution

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_mirrored_without_a_gpu_trains_on_the_cpu_and_says_so(tiny_store, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"fit": tiny_fit_settings(epochs=1)}))
    result = subprocess.run(
        [str(BIN / "trainer"), "fit", "--data", str(tiny_store[0]), "--strategy", "mirrored"],
        cwd=tmp_path,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("fit.strategy mirrored: no GPU visible; training on the CPU (1 replica)") == 1
    assert "epoch 1/1:" in output and (tmp_path / "models" / "model.keras").is_file()


def test_replicas_multiply_the_batch_and_the_learning_rate():
    settings = tiny_fit_settings(batch_size=64, learning_rate=0.001)
    assert Distribution("mirrored", None, 1).scaled(settings) == settings
    scaled = Distribution("mirrored", None, 4).scaled(settings)
    assert scaled["batch_size"] == 256 and scaled["learning_rate"] == pytest.approx(0.004)
    assert {key: value for key, value in scaled.items() if key not in ("batch_size", "learning_rate")} == {
        key: value for key, value in settings.items() if key not in ("batch_size", "learning_rate")
    }


def test_an_unknown_strategy_is_a_one_line_error(tiny_store, tmp_path):
    with pytest.raises(UserError, match="fit.strategy: expected one of default, mirrored, got 'tpu'"):
        fit_module.fit(tiny_store[0], tmp_path / "model.keras", tiny_fit_settings(strategy="tpu"))
