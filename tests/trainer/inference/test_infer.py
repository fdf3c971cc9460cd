"""``trainer infer`` end to end, with a model trained in the session fixture (tests/conftest.py: piano_model)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile
import soxr
from typer.testing import CliRunner

from builder.corpus import NOTE_DTYPE
from pianoscribe.constants import HOP_SECONDS
from trainer.cli import app
from trainer.inference.outputs import read_csv

CHORD = np.array([(0.3, 0.8, 60, 100), (0.3, 0.8, 64, 90), (0.3, 0.8, 67, 80)], dtype=NOTE_DTYPE)
MODEL_THRESHOLDS = (  # the tiny model's own thresholds, chosen for the onset peak alone
    "decode: {onset_threshold: null, frame_threshold: null, min_note_seconds: null, onset_neighbour_weight: 0}\n"
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chord_audio(piano_model) -> np.ndarray:
    from builder import banks
    from builder.dataset import render

    return render.render_notes(CHORD, banks.read_bank(piano_model.bank), piano_model.synth_settings)


@pytest.fixture(scope="module")
def model_thresholds(tmp_path_factory) -> Path:
    """A params file that decodes with the thresholds stored in the model (the tiny model's own)."""
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(MODEL_THRESHOLDS)
    return path


def infer(model: Path, *arguments: str, params: Path | None = None):
    extra = ["--params", str(params)] if params is not None else []
    result = CliRunner().invoke(app, ["infer", *arguments, "--model", str(model), *extra])
    return result, result.output  # stdout and stderr, interleaved


def test_a_rendered_chord_comes_back_as_its_keys(piano_model, chord_audio, model_thresholds, tmp_path: Path) -> None:
    soundfile.write(tmp_path / "chord.wav", chord_audio, 44100, subtype="FLOAT")
    result, output = infer(
        piano_model.model,
        str(tmp_path / "chord.wav"),
        "--out-dir",
        str(tmp_path / "out"),
        "--png",
        params=model_thresholds,
    )
    assert result.exit_code == 0, output
    assert "chord.wav: 3 notes" in output and "x realtime" in output
    assert f"model {piano_model.model.with_suffix('.onnx')} (onnx)" in " ".join(output.split())  # the current twin

    notes = read_csv(tmp_path / "out" / "chord.csv")
    assert sorted(notes["key"]) == [60, 64, 67]
    assert abs(notes["onset"].min() - 0.3) < 0.05

    midi = pretty_midi.PrettyMIDI(str(tmp_path / "out" / "chord.mid"))
    from_midi = sorted(
        (round(note.start, 2), round(note.end, 2), note.pitch, note.velocity) for note in midi.instruments[0].notes
    )
    from_csv = sorted(
        (round(float(note["onset"]), 2), round(float(note["offset"]), 2), int(note["key"]), int(note["velocity"]))
        for note in notes
    )
    assert from_midi == from_csv

    with np.load(tmp_path / "out" / "chord.npz") as frames:
        n_frames = -(-len(chord_audio) // 1024)
        assert frames["amplitude"].shape == frames["probability"].shape == (n_frames, 88)
        np.testing.assert_allclose(frames["frame_times"], np.arange(n_frames) * HOP_SECONDS)
        middle = int(0.55 / HOP_SECONDS)
        assert set(np.flatnonzero(frames["probability"][middle] > 0.5) + 21) == {60, 64, 67}
    assert (tmp_path / "out" / "chord.png").stat().st_size > 10_000


def test_stereo_48k_24bit_gives_the_same_notes(piano_model, chord_audio, model_thresholds, tmp_path: Path) -> None:
    soundfile.write(tmp_path / "original.wav", chord_audio, 44100, subtype="FLOAT")
    at_48k = soxr.resample(chord_audio, 44100, 48000, quality="VHQ")
    soundfile.write(tmp_path / "stereo.wav", np.stack([at_48k, at_48k], axis=1), 48000, subtype="PCM_24")
    soundfile.write(tmp_path / "flac16.flac", chord_audio, 44100, subtype="PCM_16")
    result, output = infer(
        piano_model.model,
        *(str(tmp_path / name) for name in ("original.wav", "stereo.wav", "flac16.flac")),
        params=model_thresholds,
    )
    assert result.exit_code == 0, output
    assert not list(tmp_path.glob("*.png"))  # the picture only with --png
    original = read_csv(tmp_path / "original.csv")
    for other in ("stereo", "flac16"):
        notes = read_csv(tmp_path / f"{other}.csv")
        assert list(notes["key"]) == list(original["key"]), other
        np.testing.assert_allclose(notes["onset"], original["onset"], atol=HOP_SECONDS + 1e-6)
        np.testing.assert_allclose(notes["offset"], original["offset"], atol=HOP_SECONDS + 1e-6)


def test_bad_files_are_named_and_the_others_still_run(piano_model, chord_audio, tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    soundfile.write(good, chord_audio, 44100, subtype="PCM_16")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.flac").write_text("not audio at all\n" * 50)
    (tmp_path / "cut.wav").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bad = ["missing.wav", "empty.wav", "text.flac", "cut.wav"]
    result, output = infer(piano_model.model, *(str(tmp_path / name) for name in [bad[0], "good.wav", *bad[1:]]))
    assert result.exit_code == 1
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 4
    for name, words, line in zip(bad, ["no such file", "empty", "not an audio file", "truncated"], lines):
        assert f"{tmp_path / name}:" in line and words in line
    assert "1 of 5 files transcribed" in output
    assert (tmp_path / "good.csv").exists() and not (tmp_path / "cut.csv").exists()


def test_a_missing_model_is_one_line(tmp_path: Path) -> None:
    result, output = infer(tmp_path / "nope.keras", str(tmp_path / "song.wav"))
    assert result.exit_code == 1 and "nope.keras" in output and "Traceback" not in output


def test_existing_outputs_are_kept_unless_overwrite(piano_model, chord_audio, model_thresholds, tmp_path: Path) -> None:
    """`builder render song.mid -o song.wav` then `trainer infer song.wav` must not destroy the user's song.mid."""
    soundfile.write(tmp_path / "song.wav", chord_audio, 44100, subtype="FLOAT")
    (tmp_path / "song.mid").write_bytes(b"MThd the user's own MIDI")
    result, output = infer(piano_model.model, str(tmp_path / "song.wav"), params=model_thresholds)
    assert result.exit_code == 1
    assert f"{tmp_path / 'song.mid'}: exists; give --overwrite" in " ".join(output.split())
    assert (tmp_path / "song.mid").read_bytes() == b"MThd the user's own MIDI"
    assert not (tmp_path / "song.csv").exists()
    result, output = infer(piano_model.model, str(tmp_path / "song.wav"), "--overwrite", params=model_thresholds)
    assert result.exit_code == 0, output
    assert pretty_midi.PrettyMIDI(str(tmp_path / "song.mid")).instruments[0].notes


def test_an_out_dir_that_is_a_file_is_one_line(piano_model, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    result, output = infer(
        piano_model.model, str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--out-dir", str(tmp_path / "out")
    )
    assert result.exit_code == 1
    assert output.count("error:") == 1 and "--out-dir is a file" in output


def test_a_full_disk_leaves_no_partial_outputs(piano_model, chord_audio, small_disk, tmp_path: Path) -> None:
    long_audio = np.tile(chord_audio, 20)  # enough frames that the outputs cannot fit in 64 KiB
    soundfile.write(tmp_path / "long.wav", long_audio, 44100, subtype="FLOAT")
    disk = small_disk("64k")
    result, output = infer(piano_model.model, str(tmp_path / "long.wav"), "--out-dir", str(disk))
    assert result.exit_code == 1
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(disk) in lines[0] and "No space left" in lines[0] and ".tmp" not in lines[0]
    assert list(disk.iterdir()) == []


def trainer_subprocess(*arguments: str, cwd: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``trainer ARGUMENTS`` as a user runs it, and the top-level packages it imported (``python -X importtime``)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trainer.cli", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    return result, imported


HEAVY = {"tensorflow", "keras", "matplotlib"}


def test_infer_runs_the_onnx_twin_without_tensorflow_and_finds_the_notes_keras_finds(
    piano_model, chord_audio, model_thresholds, tmp_path: Path
) -> None:
    soundfile.write(tmp_path / "chord.wav", chord_audio, 44100, subtype="FLOAT")
    arguments = ["--model", str(piano_model.model), "--params", str(model_thresholds)]
    result, imported = trainer_subprocess("infer", "chord.wav", "--out-dir", "onnx", *arguments, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(onnx)" in result.stderr and "onnxruntime" in imported
    assert not imported & HEAVY, f"trainer infer imported {sorted(imported & HEAVY)}"
    help_result, help_imported = trainer_subprocess("infer", "--help", cwd=tmp_path)
    assert help_result.returncode == 0 and not help_imported & (HEAVY | {"onnxruntime"})

    keras_result, output = infer(
        piano_model.model,
        str(tmp_path / "chord.wav"),
        "--out-dir",
        str(tmp_path / "keras"),
        "--backend",
        "keras",
        params=model_thresholds,
    )
    assert keras_result.exit_code == 0 and "(keras)" in output, output
    onnx_notes, keras_notes = read_csv(tmp_path / "onnx" / "chord.csv"), read_csv(tmp_path / "keras" / "chord.csv")
    assert sorted(onnx_notes["key"]) == [60, 64, 67]
    np.testing.assert_array_equal(onnx_notes, keras_notes)
    with np.load(tmp_path / "onnx" / "chord.npz") as onnx_frames, np.load(tmp_path / "keras" / "chord.npz") as frames:
        for name in ("probability", "onset_probability", "amplitude"):
            np.testing.assert_allclose(onnx_frames[name], frames[name], atol=1e-5)


def test_a_stale_onnx_twin_is_not_run(piano_model, chord_audio, tmp_path: Path) -> None:
    """A .keras changed after its export (retrained, edited) must not be transcribed with the old twin."""
    from trainer.model import model_file

    soundfile.write(tmp_path / "chord.wav", chord_audio, 44100, subtype="FLOAT")
    keras_path = tmp_path / "model.keras"
    shutil.copy(piano_model.model, keras_path)
    shutil.copy(piano_model.model.with_suffix(".onnx"), keras_path.with_suffix(".onnx"))
    model, info = model_file.load_model(keras_path)
    info.frame_threshold = 0.123
    model_file.set_model_info(model, info)
    model_file.save_model(model, keras_path)

    result, output = infer(keras_path, str(tmp_path / "chord.wav"), "--out-dir", str(tmp_path / "auto"))
    output = " ".join(output.split())
    assert result.exit_code == 0, output
    assert f"warning: {keras_path.with_suffix('.onnx')}: not exported from {keras_path}" in output
    assert f"model {keras_path} (keras)" in output
    result, output = infer(
        keras_path, str(tmp_path / "chord.wav"), "--out-dir", str(tmp_path / "forced"), "--backend", "onnx"
    )
    assert result.exit_code == 1 and output.count("error:") == 1 and "trainer export" in output
    assert not (tmp_path / "forced").exists()

    export = CliRunner().invoke(app, ["export", "--model", str(keras_path)])
    assert export.exit_code == 0, export.output
    result, output = infer(keras_path, str(tmp_path / "chord.wav"), "--out-dir", str(tmp_path / "renewed"))
    assert result.exit_code == 0 and "warning" not in output and "(onnx)" in output, output


def test_velocities_come_from_the_training_banks_curve_and_grow_with_velocity(piano_model) -> None:
    """The model carries its store's attack loudness (``attack_energy``) in head units; louder notes read louder."""
    from builder import banks
    from builder.dataset import render
    from builder.dataset.store import attributes, open_store
    from trainer.features import velocity_curve
    from trainer.inference.decode import DecodeSettings
    from trainer.inference.frame_model import FrameModel
    from trainer.inference.transcribe import transcribe_audio

    frame_model = FrameModel.load(piano_model.model.with_suffix(".onnx"))
    attack = attributes(open_store(piano_model.store))["attack_energy"]
    assert frame_model.info.velocity_curve == velocity_curve(attack, frame_model.info.energy_scale)
    bank = banks.read_bank(piano_model.bank)
    read = []
    for velocity in (40, 80, 120):
        audio = render.render_notes(
            np.array([(0.3, 0.8, 60, velocity)], dtype=NOTE_DTYPE), bank, piano_model.synth_settings
        )
        notes = transcribe_audio(audio, frame_model, DecodeSettings.resolve({}, frame_model.info)).notes
        assert notes["key"].tolist() == [60]
        read.append(int(notes["velocity"][0]))
    assert read == sorted(read) and read[0] < read[-1], read


def test_files_transcribed_at_once_give_the_same_bytes_in_the_same_order(
    piano_model, chord_audio, model_thresholds, tmp_path: Path
) -> None:
    names = []
    for index, delay in enumerate([0.0, 0.4, 1.1, 0.2, 2.0]):  # different lengths: jobs finish out of order
        names.append(tmp_path / f"take{index}.wav")
        soundfile.write(names[-1], np.concatenate([np.zeros(int(delay * 44100), np.float32), chord_audio]), 44100)
    (tmp_path / "broken.wav").write_text("not audio\n")
    inputs = [str(name) for name in names[:2]] + [str(tmp_path / "broken.wav")] + [str(name) for name in names[2:]]
    outputs = {}
    for jobs in ("1", "3"):
        result, output = infer(
            piano_model.model,
            *inputs,
            "--out-dir",
            str(tmp_path / jobs),
            "--jobs",
            jobs,
            "--png",
            params=model_thresholds,
        )
        assert result.exit_code == 1, output  # the broken file, reported in its place
        lines = [line.removeprefix("error: ") for line in output.splitlines() if ".wav: " in line]
        assert [line.split(": ")[0] for line in lines] == inputs
        assert "5 of 6 files transcribed" in output and f"{jobs} at a time" in output
        outputs[jobs] = {path.name: path.read_bytes() for path in (tmp_path / jobs).iterdir() if path.suffix != ".png"}
        assert len(list((tmp_path / jobs).glob("*.png"))) == 5
    assert len(outputs["1"]) == 15 and outputs["1"] == outputs["3"]


def test_concurrency_gives_one_file_all_cores_and_many_files_one_core_each() -> None:
    from trainer.inference.infer import concurrency

    assert concurrency(1, 0, cores=2) == (1, 0)  # onnxruntime's own threads on every core
    assert concurrency(64, 0, cores=2) == (2, 1)
    assert concurrency(64, 1, cores=2) == (1, 0)
    assert concurrency(3, 8, cores=16) == (3, 5)
