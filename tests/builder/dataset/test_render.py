"""``builder render`` and ``render_notes``: whole pieces through the engine, and the engine's FFT of any audio."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import soundfile
from typer.testing import CliRunner

from builder.banks import read_bank
from builder.cli import app
from builder.dataset import render
from builder.dataset.plan import release_samples
from builder.engine import fft_magnitude_of_audio
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from tests.builder.conftest import notes, tone_bank

SETTINGS = {**defaults("synth"), "bank_precision": "float32"}


def write_midi(path, rows):
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    for onset, offset, key, velocity in rows:
        piano.notes.append(pretty_midi.Note(velocity=velocity, pitch=key, start=onset, end=offset))
    midi.instruments.append(piano)
    midi.write(str(path))


def test_a_renderer_renders_piece_after_piece_as_render_notes_does():
    bank = tone_bank(seconds=0.5)
    pieces = [notes((0.1, 0.2, 60, 100), (0.15, 0.6, 72, 40)), notes(), notes((0.0, 0.3, 48, 127))]
    renderer = render.Renderer(bank, {**SETTINGS, "bank_precision": "int16"})
    for piece in pieces + pieces[::-1]:
        expected = render.render_notes(piece, bank, {**SETTINGS, "bank_precision": "int16"})
        assert np.array_equal(renderer.render(piece), expected) and expected.dtype == np.float32


def test_render_notes_is_the_sum_of_the_notes_with_their_release():
    bank = tone_bank(seconds=0.5)
    single = [notes((0.1, 0.2, 60, 100)), notes((0.15, 0.6, 72, 40))]
    both = notes((0.1, 0.2, 60, 100), (0.15, 0.6, 72, 40))
    audio = render.render_notes(both, bank, SETTINGS)
    parts = [render.render_notes(part, bank, SETTINGS) for part in single]
    summed = np.zeros(max(len(part) for part in parts), np.float32)
    for part in parts:
        summed[: len(part)] += part
    assert len(audio) == len(summed)
    np.testing.assert_allclose(audio, summed, atol=1e-6)
    onset = round(0.1 * 44100)
    assert not audio[:onset].any() and audio[onset : onset + 100].any()
    release_end = round(0.2 * 44100) + release_samples(SETTINGS)
    assert not parts[0][release_end:].any() and parts[0][release_end - 200 : release_end].any()
    # the second note's recording (0.5 s) runs out before its note-off: the audio ends with it
    assert len(audio) == round(0.15 * 44100) + round(0.5 * 44100)


def test_builder_render_writes_the_engine_audio(tiny_files, tmp_path):
    rows = [(0.0, 0.3, 60, 90), (0.25, 0.5, 64, 60), (0.25, 0.9, 48, 127)]
    song = tmp_path / "song.mid"
    write_midi(song, rows)
    output = tmp_path / "song.wav"
    result = CliRunner().invoke(app, ["render", str(song), "--bank", str(tiny_files["test_bank"]), "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    audio, sample_rate = soundfile.read(output, dtype="float32")
    assert sample_rate == 44100
    expected = render.render_notes(render.read_song(song), read_bank(tiny_files["test_bank"]), defaults("synth"))
    assert np.array_equal(audio, expected)
    assert np.abs(audio).max() > 0.01


def test_render_of_a_non_midi_file_is_a_one_line_error(tmp_path):
    (tmp_path / "song.txt").write_text("not music")
    with pytest.raises(UserError, match="song.txt"):
        render.read_song(tmp_path / "song.txt")
    result = CliRunner().invoke(app, ["render", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "x.wav")])
    assert result.exit_code == 1 and "missing.mid" in result.output


@pytest.mark.parametrize("window", ["none", "hann"])
def test_fft_magnitude_of_audio_is_the_grid_of_buffers(window):
    rng = np.random.default_rng(0)
    audio = rng.standard_normal(5000).astype(np.float32)
    magnitude = fft_magnitude_of_audio(audio, window)
    padded = np.zeros(5 * 1024)
    padded[:5000] = audio
    weights = np.hanning(1025)[:1024] if window == "hann" else np.ones(1024)
    expected = np.abs(np.fft.rfft(padded.reshape(5, 1024) * weights, axis=1))[:, :512]
    np.testing.assert_allclose(magnitude, expected, rtol=1e-4, atol=1e-3)
