"""The native engine against plain numpy on tiny banks: mixing, labels, FFT, augmentation, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from builder.banks import layer_for_velocity
from builder.dataset import synth
from builder.dataset.plan import SegmentPlan, noise_table, piece_table
from builder.engine import fft_long_magnitude_of_audio, load_bank_into, new_engine
from tests.builder.conftest import notes, tone_bank

RELEASE = 2000  # samples
FRAMES = 8
SPAN = FRAMES * 1024


def engine_with(bank, pieces, precision="float32", threads=1):
    engine = new_engine(threads)
    load_bank_into(engine, bank, precision)
    piece_table([(f"p{i}", piece) for i, piece in enumerate(pieces)], RELEASE).load_into(engine)
    engine.set_noise(noise_table(0))
    return engine


def run(
    engine,
    starts,
    pieces=None,
    fft_dtype=np.float32,
    window="none",
    gain=1.0,
    ratio=1.0,
    noise=0.0,
    tilt=0.0,
    frames=FRAMES,
    exponent=1.0,
    long_bins=0,
):
    count = len(starts)
    plan = SegmentPlan(
        piece=np.asarray(pieces if pieces is not None else [0] * count, np.int64),
        bank=np.zeros(count, np.int32),
        start_sample=np.asarray(starts, np.int64),
        gain=np.full(count, gain, np.float32),
        detune_ratio=np.full(count, ratio),
        noise_amplitude=np.full(count, noise, np.float32),
        noise_offset=np.full(count, 1000, np.int64),
        tilt_db=np.full(count, tilt, np.float32),
    )
    buffers = synth.ShardBuffers.allocate(count * frames, np.dtype(fft_dtype).name, long_bins)
    settings = {
        "frames_per_segment": frames,
        "release_seconds": RELEASE / 44100,
        "velocity_exponent": exponent,
        "window": window,
        "augment": {"tilt_pivot_hz": 1000.0},
    }
    synth.render_shard(engine, plan, buffers, settings)
    return buffers


def reference_signal(bank, note_rows, start, length, ratio=1.0, gain=1.0, exponent=1.0):
    """The mix computed the slow, obvious way in float64: per note, per sample."""
    mix = np.zeros(length)
    per_key = {}
    time = np.arange(start, start + length)
    for onset_s, offset_s, key, velocity in note_rows:
        onset, offset = round(onset_s * 44100), round(offset_s * 44100)
        layer = layer_for_velocity(velocity, bank.n_layers)
        recording = bank.recording(key, layer).astype(np.float64)
        note_gain = gain * (velocity / bank.layer_velocities[layer]) ** exponent
        position = (time - onset) * ratio
        inside = (position >= 0) & (position < len(recording) - (0 if ratio == 1.0 else 1))
        envelope = np.clip(1.0 - (time - offset) / RELEASE, 0.0, 1.0)
        contribution = np.zeros(length)
        contribution[inside] = np.interp(position[inside], np.arange(len(recording)), recording)
        contribution *= note_gain * envelope
        mix += contribution
        per_key[key] = per_key.get(key, 0) + contribution
    return mix, per_key


def test_one_note_key_energy_is_the_sum_of_squares():
    bank = tone_bank()
    rows = [(0.05, 0.3, 60, 90)]
    buffers = run(engine_with(bank, [notes(*rows)]), [0])
    _, per_key = reference_signal(bank, rows, 0, SPAN)
    expected = (per_key[60].reshape(FRAMES, 1024) ** 2).sum(axis=1)
    np.testing.assert_allclose(buffers.key_energy[:, 60 - 21], expected, rtol=1e-5, atol=1e-9)
    others = np.delete(buffers.key_energy, 60 - 21, axis=1)
    assert not others.any()


@pytest.mark.parametrize("window", ["none", "hann"])
def test_fft_magnitude_is_numpy_rfft_of_the_same_buffer(window):
    bank = tone_bank()
    rows = [(0.0, 0.4, 48, 40), (0.02, 0.1, 64, 127), (0.07, 0.3, 72, 80)]
    buffers = run(engine_with(bank, [notes(*rows)]), [300], window=window)
    mix, _ = reference_signal(bank, rows, 300, SPAN)
    weights = scipy.signal.get_window("hann", 1024) if window == "hann" else np.ones(1024)
    expected = np.abs(np.fft.rfft(mix.reshape(FRAMES, 1024) * weights, axis=1))[:, :512]
    np.testing.assert_allclose(buffers.fft_magnitude, expected, rtol=1e-4, atol=1e-4 * expected.max())


def test_float16_output_is_the_float32_output_rounded():
    bank = tone_bank()
    engine = engine_with(bank, [notes((0.0, 0.4, 48, 40), (0.02, 0.1, 64, 127))])
    single = run(engine, [0, 5000], fft_dtype=np.float32, window="hann")
    half = run(engine, [0, 5000], fft_dtype=np.float16, window="hann")
    assert np.array_equal(half.fft_magnitude, single.fft_magnitude.astype(np.float16))


def test_a_note_contributes_nothing_before_its_onset():
    bank = tone_bank()
    onset = 0.1
    buffers = run(engine_with(bank, [notes((onset, 0.3, 67, 100))]), [0])
    onset_frame = round(onset * 44100) // 1024
    assert not buffers.key_energy[:onset_frame].any()
    assert not buffers.fft_magnitude[:onset_frame].any()
    assert buffers.key_energy[onset_frame, 67 - 21] > 0


def test_a_note_fades_over_the_release_instead_of_stopping_dead():
    bank = tone_bank(seconds=1.0, decay=0.5)
    rows = [(0.0, 0.1, 60, 127)]
    buffers = run(engine_with(bank, [notes(*rows)]), [0])
    _, per_key = reference_signal(bank, rows, 0, SPAN)
    energy = buffers.key_energy[:, 60 - 21]
    off_frame, end_frame = round(0.1 * 44100) // 1024, (round(0.1 * 44100) + RELEASE) // 1024
    assert energy[off_frame + 1] > 0  # still sounding after the note-off ...
    assert energy[off_frame + 1] < energy[off_frame - 1] / 2  # ... but fading
    assert not energy[end_frame + 1 :].any()  # and silent once the release is over
    np.testing.assert_allclose(energy, (per_key[60].reshape(FRAMES, 1024) ** 2).sum(axis=1), rtol=1e-5, atol=1e-9)


def test_key_active_and_key_onset_follow_the_notes():
    bank = tone_bank()
    rows = [(0.01, 0.05, 48, 60), (0.03, 0.15, 60, 60), (0.12, 0.13, 72, 60), (0.02, 0.3, 30, 60)]  # 30: silent key
    starts = [0, 700]
    buffers = run(engine_with(bank, [notes(*rows)]), starts)
    for segment, start in enumerate(starts):
        for frame in range(FRAMES):
            frame_start = start + frame * 1024
            centre = frame_start + 512
            active, onset = np.zeros(88, np.uint8), np.zeros(88, np.uint8)
            for onset_s, offset_s, key, _ in rows:
                note_on, note_off = round(onset_s * 44100), round(offset_s * 44100)
                active[key - 21] |= note_on <= centre < note_off
                onset[key - 21] |= frame_start <= note_on < frame_start + 1024
            row = segment * FRAMES + frame
            assert np.array_equal(buffers.key_active[row], active), (segment, frame)
            assert np.array_equal(buffers.key_onset[row], onset), (segment, frame)
    assert buffers.key_active[:, 30 - 21].any() and not buffers.key_energy[:, 30 - 21].any()


def test_velocity_layers_and_gain():
    bank = tone_bank(layers=4)
    rows = [(0.0, 0.2, 64, 20), (0.0, 0.2, 60, 127)]
    buffers = run(engine_with(bank, [notes(*rows)]), [0], gain=0.5, exponent=1.5)
    _, per_key = reference_signal(bank, rows, 0, SPAN, gain=0.5, exponent=1.5)
    for key in (60, 64):
        np.testing.assert_allclose(
            buffers.key_energy[:, key - 21], (per_key[key].reshape(FRAMES, 1024) ** 2).sum(1), rtol=1e-5
        )


@pytest.mark.parametrize("ratio", [2 ** (12 / 1200), 2 ** (-15 / 1200)])
def test_detune_resamples_by_linear_interpolation(ratio):
    bank = tone_bank()
    rows = [(0.01, 0.15, 64, 100), (0.02, 0.17, 72, 50)]
    buffers = run(engine_with(bank, [notes(*rows)]), [100], ratio=ratio)
    mix, per_key = reference_signal(bank, rows, 100, SPAN, ratio=ratio)
    np.testing.assert_allclose(
        buffers.key_energy[:, 64 - 21], (per_key[64].reshape(FRAMES, 1024) ** 2).sum(1), rtol=1e-4, atol=1e-7
    )
    expected = np.abs(np.fft.rfft(mix.reshape(FRAMES, 1024), axis=1))[:, :512]
    np.testing.assert_allclose(buffers.fft_magnitude, expected, rtol=1e-4, atol=1e-4 * expected.max())


def test_noise_and_tilt_change_the_spectrum_but_not_the_labels():
    bank = tone_bank()
    engine = engine_with(bank, [notes((0.0, 0.3, 60, 100))])
    clean = run(engine, [0], window="hann")
    noisy = run(engine, [0], window="hann", noise=1e-3)
    tilted = run(engine, [0], window="hann", tilt=1.5)
    for changed in (noisy, tilted):
        assert np.array_equal(changed.key_energy, clean.key_energy)
        assert np.array_equal(changed.key_active, clean.key_active)
    assert not np.allclose(noisy.fft_magnitude, clean.fft_magnitude)
    frequencies = np.maximum(np.arange(512), 1) * 44100 / 1024
    curve = 10 ** (1.5 * np.log2(frequencies / 1000.0) / 20)
    np.testing.assert_allclose(tilted.fft_magnitude, clean.fft_magnitude * curve, rtol=1e-5, atol=1e-9)


def test_int16_bank_is_within_its_quantization():
    bank = tone_bank()
    rows = [(0.0, 0.3, 60, 100), (0.05, 0.2, 67, 30)]
    exact = run(engine_with(bank, [notes(*rows)], "float32"), [0])
    packed = run(engine_with(bank, [notes(*rows)], "int16"), [0])
    np.testing.assert_allclose(packed.key_energy, exact.key_energy, rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(packed.fft_magnitude, exact.fft_magnitude, rtol=0, atol=1e-3 * exact.fft_magnitude.max())


def test_same_plan_gives_identical_bytes_with_one_and_two_threads():
    bank = tone_bank()
    pieces = [notes(*[(0.05 * i, 0.05 * i + 0.2, key, 20 + 5 * i) for i, key in enumerate((48, 60, 64, 67, 72) * 3)])]
    starts = np.arange(0, 60000, 917)
    outputs = [
        run(
            engine_with(bank, pieces, "int16", threads),
            starts,
            window="hann",
            fft_dtype=np.float16,
            ratio=1.003,
            noise=1e-4,
            tilt=0.7,
            frames=1,
            long_bins=100,
        )
        for threads in (1, 2)
    ]
    for name in ("fft_magnitude", "key_energy", "key_active", "key_onset", "fft_long_magnitude"):
        assert getattr(outputs[0], name).tobytes() == getattr(outputs[1], name).tobytes(), name


def test_render_is_the_mix_of_consecutive_buffers():
    bank = tone_bank()
    rows = [(0.0, 0.2, 48, 70), (0.1, 0.5, 72, 110)]
    engine = engine_with(bank, [notes(*rows)])
    audio = np.zeros(40000, np.float32)
    engine.render(0, 0, audio, release_samples=RELEASE, velocity_exponent=1.0)
    mix, _ = reference_signal(bank, rows, 0, len(audio))
    np.testing.assert_allclose(audio, mix, rtol=0, atol=1e-6)


def test_analyze_equals_the_synthesized_spectrum():
    bank = tone_bank()
    rows = [(0.0, 0.2, 48, 70), (0.1, 0.5, 72, 110)]
    engine = engine_with(bank, [notes(*rows)])
    audio = np.zeros(SPAN, np.float32)
    engine.render(0, 0, audio, release_samples=RELEASE, velocity_exponent=1.0)
    analyzed = np.empty((FRAMES, 512), np.float32)
    engine.analyze(audio.reshape(FRAMES, 1024), analyzed, "hann")
    assert np.array_equal(analyzed, run(engine, [0], window="hann").fft_magnitude)


def long_window_reference(mix: np.ndarray, rows: int, bins: int) -> np.ndarray:
    """Row i: |rfft| of the 4096 samples mix[1024 i, 1024 i + 4096) (mix starts 3 buffers before row 0) through a
    periodic Hann window, / 4, bins 0..bins-1."""
    window = scipy.signal.get_window("hann", 4096) / 4
    return np.stack([np.abs(np.fft.rfft(mix[1024 * i : 1024 * i + 4096] * window))[:bins] for i in range(rows)])


@pytest.mark.parametrize("start", [0, 5000])
def test_long_window_rows_are_the_rfft_of_the_4096_samples_around_each_buffer(start):
    bank = tone_bank()
    rows = [(0.0, 0.2, 48, 70), (0.1, 0.5, 72, 110), (0.21, 0.3, 60, 50)]
    engine = engine_with(bank, [notes(*rows)])
    synthesized = run(engine, [start], window="hann", long_bins=192).fft_long_magnitude
    mix, _ = reference_signal(bank, rows, start - 3072, SPAN + 3072)
    expected = long_window_reference(mix, FRAMES, 192)
    np.testing.assert_allclose(synthesized, expected, rtol=0, atol=1e-5 * expected.max())


def test_the_long_window_changes_no_byte_of_the_other_arrays():
    bank = tone_bank()
    engine = engine_with(bank, [notes((0.0, 0.3, 60, 100), (0.1, 0.4, 48, 60))])
    augment = {"window": "hann", "ratio": 1.004, "noise": 1e-4, "tilt": 0.8, "fft_dtype": np.float16}
    without = run(engine, [3000, 7000], **augment)
    with_long = run(engine, [3000, 7000], long_bins=64, **augment)
    for name in ("fft_magnitude", "key_energy", "key_active", "key_onset"):
        assert getattr(without, name).tobytes() == getattr(with_long, name).tobytes(), name
    assert np.isfinite(with_long.fft_long_magnitude.astype(np.float32)).all()


def test_analyze_long_equals_the_synthesized_long_rows():
    bank = tone_bank()
    rows = [(0.0, 0.2, 48, 70), (0.1, 0.5, 72, 110)]
    engine = engine_with(bank, [notes(*rows)])
    audio = np.zeros(SPAN, np.float32)
    engine.render(0, 0, audio, release_samples=RELEASE, velocity_exponent=1.0)
    analyzed = fft_long_magnitude_of_audio(audio, 192)
    assert np.array_equal(analyzed, run(engine, [0], window="hann", long_bins=192).fft_long_magnitude)


def test_bad_inputs_are_refused():
    bank = tone_bank()
    engine = engine_with(bank, [notes((0.0, 0.2, 48, 70))])
    with pytest.raises(ValueError, match="piece index"):
        run(engine, [0], pieces=[3])
    with pytest.raises(ValueError, match="window"):
        run(engine, [0], window="kaiser")
    with pytest.raises(ValueError, match="offsets/lengths"):
        engine.add_bank(bank.audio[:10], bank.offsets, bank.lengths, bank.layer_velocities)
    with pytest.raises(TypeError):  # an output of the wrong dtype is refused, not silently converted
        engine.render(0, 0, np.zeros(100, np.float64), release_samples=0, velocity_exponent=1.0)
    with pytest.raises(ValueError, match="sorted"):
        engine.set_notes(
            np.array([5, 1]),
            np.array([9, 9]),
            np.array([60, 60], np.uint8),
            np.array([9, 9], np.uint8),
            np.array([0, 2]),
        )
