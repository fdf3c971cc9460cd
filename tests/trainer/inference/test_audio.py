"""trainer.audio: every format and rate reads as the same mono 44.1 kHz signal; every bad file is named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from pianoscribe.errors import UserError
from trainer.inference.audio import SAMPLE_RATE, audio_info, iter_mono_blocks, read_mono


def chord(seconds: float, sample_rate: int) -> np.ndarray:
    """A decaying A-minor triad: real pitched content, not silence."""
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    tones = sum(np.sin(2 * np.pi * hz * time) for hz in (220.0, 261.63, 329.63))
    return (0.25 * tones * np.exp(-time)).astype(np.float32)


@pytest.mark.parametrize(
    "extension, subtype, tolerance",
    [
        ("wav", "PCM_U8", 2e-2),
        ("wav", "PCM_16", 1e-4),
        ("wav", "PCM_24", 1e-6),
        ("wav", "PCM_32", 1e-6),
        ("wav", "FLOAT", 0.0),
        ("flac", "PCM_16", 1e-4),
        ("flac", "PCM_24", 1e-6),
        ("ogg", "VORBIS", None),
    ],
)
def test_formats_read_as_the_same_signal(tmp_path: Path, extension: str, subtype: str, tolerance) -> None:
    original = chord(1.0, SAMPLE_RATE)
    path = tmp_path / f"chord_{subtype}.{extension}"
    soundfile.write(path, original, SAMPLE_RATE, subtype=subtype)
    audio = read_mono(path)
    assert audio.dtype == np.float32 and audio.shape == original.shape
    if tolerance is None:  # lossy: the waveform changes, the content does not
        assert np.corrcoef(audio, original)[0, 1] > 0.99
    else:
        assert np.max(np.abs(audio - original)) <= tolerance


def test_stereo_48k_is_mixed_and_resampled(tmp_path: Path) -> None:
    left, right = chord(2.0, 48000), 0.5 * chord(2.0, 48000)
    path = tmp_path / "stereo48.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 48000, subtype="PCM_24")
    audio = read_mono(path)
    expected = soxr.resample((left + right) / 2, 48000, SAMPLE_RATE, quality="HQ")
    assert audio.shape == (2 * SAMPLE_RATE,)
    assert np.max(np.abs(audio - expected)) < 1e-3
    info = audio_info(path)
    assert (info.sample_rate, info.channels, info.frames) == (48000, 2, 96000)


@settings(max_examples=20, deadline=None)
@given(n_samples=st.integers(1, 20000), block_frames=st.integers(1, 5000), rate=st.sampled_from([22050, 44100, 48000]))
def test_blocks_join_to_the_whole_file(tmp_path_factory, n_samples: int, block_frames: int, rate: int) -> None:
    """Block size changes memory use only: the joined blocks are the one-shot read (and resample)."""
    path = tmp_path_factory.mktemp("blocks") / "noise.wav"
    original = np.random.default_rng(n_samples).uniform(-0.5, 0.5, n_samples).astype(np.float32)
    soundfile.write(path, original, rate, subtype="FLOAT")
    blocks = list(iter_mono_blocks(path, block_frames=block_frames))
    joined = np.concatenate(blocks)
    expected = original if rate == SAMPLE_RATE else soxr.resample(original, rate, SAMPLE_RATE, quality="HQ")
    assert abs(len(joined) - len(expected)) <= 1
    if rate == SAMPLE_RATE:
        np.testing.assert_array_equal(joined, expected)
    assert all(len(block) > 0 for block in blocks)


def _bad_files(folder: Path) -> dict[str, Path]:
    good_wav, good_flac = folder / "good.wav", folder / "good.flac"
    soundfile.write(good_wav, chord(1.0, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    soundfile.write(good_flac, chord(1.0, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    files = {
        "missing": folder / "missing.wav",
        "empty": folder / "empty.wav",
        "text": folder / "notes.wav",
        "truncated_wav": folder / "cut.wav",
        "truncated_flac": folder / "cut.flac",
        "no_samples": folder / "silent.wav",
        "folder": folder / "a_folder.wav",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is a shopping list, not a recording\n" * 20)
    files["truncated_wav"].write_bytes(good_wav.read_bytes()[: good_wav.stat().st_size // 2])
    files["truncated_flac"].write_bytes(good_flac.read_bytes()[: good_flac.stat().st_size // 2])
    soundfile.write(files["no_samples"], np.zeros(0, np.float32), SAMPLE_RATE)
    files["folder"].mkdir()
    return files


@pytest.mark.parametrize(
    "kind, words",
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("text", "not an audio file"),
        ("truncated_wav", "truncated"),
        ("truncated_flac", "truncated"),
        ("no_samples", "no audio"),
        ("folder", "folder"),
    ],
)
def test_bad_files_give_one_line_naming_the_file(tmp_path: Path, kind: str, words: str) -> None:
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(UserError) as raised:
        read_mono(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:") and words in message and "\n" not in message


@pytest.mark.parametrize("rate", [1, 999, 768_001, 2**31 - 1])
def test_a_sample_rate_no_recording_has_is_named(tmp_path: Path, rate: int) -> None:
    """A damaged header's rate: 1 Hz once blew 0.05 s up to 2205 s (1 GB) of audio, 2**31 - 1 Hz down to none."""
    path = tmp_path / "rate.wav"
    soundfile.write(path, chord(0.05, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    header = bytearray(path.read_bytes())
    header[24:28] = rate.to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(header))

    with pytest.raises(UserError, match=rf"rate.wav: sample rate {rate} Hz is outside 1000..768000 Hz"):
        audio_info(path)


def test_a_sample_that_is_not_a_number_is_named(tmp_path: Path) -> None:
    """A damaged float file: NaN once went through to the model and came out as a transcription of nothing."""
    audio = chord(1.0, SAMPLE_RATE)
    audio[22050] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")

    with pytest.raises(UserError, match=r"nan.wav: damaged audio \(a sample at 0.50 s is not a finite number\)"):
        read_mono(path)
