"""trainer.transcribe: note decoding, block-wise and streaming runs equal the whole-song run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pianoscribe.constants import HOP_SECONDS
from pianoscribe.errors import UserError
from trainer.features import fft_magnitude_of_buffers, frames_from_audio
from trainer.inference.decode import DecodeSettings, decode_notes, notes_to_roll
from trainer.inference.frame_model import FrameModel
from trainer.inference.networks import KerasNetwork
from trainer.inference.streaming import StreamingTranscriber
from trainer.inference.transcribe import transcribe_audio
from trainer.model.architectures import build_model
from trainer.model.info import ModelInfo

DECODE = DecodeSettings(onset_threshold=0.5, frame_threshold=0.4, min_note_seconds=0.05)
KEY_C4 = 60 - 21


def heads(n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros((n_frames, 88), np.float32),
        np.zeros((n_frames, 88), np.float32),
        np.zeros((n_frames, 88), np.float32),
    )


def test_one_note_from_onset_to_release() -> None:
    active, onset, energy = heads(50)
    onset[10, KEY_C4], onset[11, KEY_C4] = 0.9, 0.6  # the peak is frame 10
    active[10:30, KEY_C4] = 0.8
    energy[11, KEY_C4] = 100 / 127
    notes = decode_notes(active, onset, energy, DECODE)
    assert len(notes) == 1
    note = notes[0]
    assert note["key"] == 60 and note["velocity"] == 100
    assert note["onset"] == pytest.approx(10 * HOP_SECONDS) and note["offset"] == pytest.approx(30 * HOP_SECONDS)


def test_restrike_splits_and_short_notes_drop() -> None:
    active, onset, energy = heads(60)
    onset[[5, 20], KEY_C4] = 0.9  # played twice, held through
    active[5:40, KEY_C4] = 0.9
    onset[8, 70 - 21] = 0.95  # an onset with one frame held: too short
    active[8, 70 - 21] = 0.9
    notes = decode_notes(active, onset, energy, DECODE)
    assert [(int(n["key"]), round(n["onset"] / HOP_SECONDS), round(n["offset"] / HOP_SECONDS)) for n in notes] == [
        (60, 5, 20),
        (60, 20, 40),
    ]
    assert len(decode_notes(active, onset, energy, DecodeSettings(0.5, 0.4, 0.0))) == 3  # keeps the short one


def test_a_clearly_sounding_note_needs_no_onset_peak() -> None:
    active, onset, energy = heads(60)
    onset[30, KEY_C4] = 0.3  # onset head unsure (below threshold)
    active[31:50, KEY_C4] = 0.9  # ... frame head sure from frame 31
    onset[9, KEY_C4 + 4] = 0.9  # an onset peak one frame before the frames rise:
    active[10:20, KEY_C4 + 4] = 0.9  # one note, from the onset peak
    active[5:40, KEY_C4 - 7] = 0.45  # above frame_threshold, never sure: no note
    notes = decode_notes(active, onset, energy, DECODE)
    assert [(int(n["key"]), round(n["onset"] / HOP_SECONDS), round(n["offset"] / HOP_SECONDS)) for n in notes] == [
        (64, 9, 20),
        (60, 31, 50),
    ]


def test_an_onset_split_over_two_frames_counts_its_neighbour() -> None:
    active, onset, energy = heads(60)
    onset[10, KEY_C4], onset[11, KEY_C4] = 0.6, 0.8  # struck near the end of buffer 10: heard in 10 and 11
    active[10:30, KEY_C4] = 0.8
    onset[40, KEY_C4 + 7] = 0.85  # a lone peak below the threshold, no neighbour to help it
    active[40:50, KEY_C4 + 7] = 0.8
    alone = DecodeSettings(onset_threshold=0.9, frame_threshold=0.4, min_note_seconds=0.05)
    assert len(decode_notes(active, onset, energy, alone)) == 0
    pooled = DecodeSettings(0.9, 0.4, 0.05, onset_neighbour_weight=0.5)  # 0.8 + 0.5 x 0.6 >= 0.9; 0.85 + 0 < 0.9
    notes = decode_notes(active, onset, energy, pooled)
    assert [(int(n["key"]), round(n["onset"] / HOP_SECONDS), round(n["offset"] / HOP_SECONDS)) for n in notes] == [
        (60, 11, 30)  # from the peak frame
    ]


def test_the_neighbour_weight_is_read_and_checked() -> None:
    info = None  # every value is given: nothing falls back to a model file
    section = {"onset_threshold": 0.9, "frame_threshold": 0.25, "min_note_seconds": 0.05}
    assert DecodeSettings.resolve(section, info).onset_neighbour_weight == 0.0  # absent: the peak alone
    assert DecodeSettings.resolve({**section, "onset_neighbour_weight": 0.5}, info).onset_neighbour_weight == 0.5
    with pytest.raises(UserError, match=r"decode\.onset_neighbour_weight: must lie between 0 and 1, got 1\.5"):
        DecodeSettings.resolve({**section, "onset_neighbour_weight": 1.5}, info)
    with pytest.raises(UserError, match=r"decode\.onset_neighbour_weight: expected a number, got 'much'"):
        DecodeSettings.resolve({**section, "onset_neighbour_weight": "much"}, info)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), n_frames=st.integers(1, 120))
def test_decoded_notes_are_well_formed(seed: int, n_frames: int) -> None:
    rng = np.random.default_rng(seed)
    active, onset, energy = (rng.uniform(0, 1, (n_frames, 88)).astype(np.float32) for _ in range(3))
    notes = decode_notes(active, onset, energy, DECODE)
    assert np.all(notes["offset"] - notes["onset"] >= DECODE.min_note_seconds - 1e-9)
    assert np.all(notes["offset"] <= n_frames * HOP_SECONDS + 1e-9) and np.all(notes["onset"] >= 0)
    assert np.all((notes["velocity"] >= 1) & (notes["velocity"] <= 127))
    order = np.lexsort((notes["key"], notes["onset"]))
    np.testing.assert_array_equal(order, np.arange(len(notes)))
    for key in np.unique(notes["key"]):  # one key never plays two notes at once
        same_key = notes[notes["key"] == key]
        assert np.all(same_key["onset"][1:] >= same_key["offset"][:-1] - 1e-9)


def test_roll_uses_frame_centres() -> None:
    notes = np.array(
        [
            (0.5 * HOP_SECONDS, 2.5 * HOP_SECONDS, 21, 127),
            (1.6 * HOP_SECONDS, 1.7 * HOP_SECONDS, 22, 127),
            (2.4 * HOP_SECONDS, 4.0 * HOP_SECONDS, 23, 127),
        ],
        dtype=[("onset", "<f8"), ("offset", "<f8"), ("key", "u1"), ("velocity", "u1")],
    )
    roll = notes_to_roll(notes, 5, values="binary")
    # frame centres at 0.5, 1.5, 2.5, ... hops; a note sounds at a centre c when onset <= c < offset
    np.testing.assert_array_equal(roll[:, 0], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(roll[:, 1], [0, 0, 0, 0, 0])  # sounds between two centres: in no frame
    np.testing.assert_array_equal(roll[:, 2], [0, 0, 1, 1, 0])


def untrained_model(context_frames: int, lookahead_frames: int, arch: str = "context"):
    """A real architecture from trainer.models with its initial weights: enough to check plumbing exactly."""
    import keras

    keras.utils.set_random_seed(0)
    fit_settings = {
        "compression": 100.0,
        "reference": {"dropout": 0.5},
        "context": {
            "freq_filters": [4],
            "freq_kernel": 5,
            "freq_pool": 2,
            "frame_units": 32,
            "context_units": 32,
            "dropout": 0.2,
        },
    }
    info = ModelInfo(
        arch=arch, context_frames=context_frames, lookahead_frames=lookahead_frames, window="hann", energy_scale=1.0
    )
    return build_model(arch, fit_settings, info, np.zeros(512, np.float32), np.ones(512, np.float32)), info


@pytest.fixture(scope="module")
def noise_fft() -> np.ndarray:
    audio = np.random.default_rng(1).normal(0, 0.1, 80 * 1024 + 300).astype(np.float32)
    return fft_magnitude_of_buffers(frames_from_audio(audio), "hann")


@pytest.mark.parametrize("context_frames, lookahead_frames", [(1, 0), (5, 1), (4, 0), (3, 2)])
def test_blocks_and_streaming_equal_the_whole_song(noise_fft, context_frames: int, lookahead_frames: int) -> None:
    model, info = untrained_model(context_frames, lookahead_frames)
    whole_song = np.asarray(model(noise_fft[None], training=False)["active"])[0]
    for block_frames, batch_blocks in [(7, 3), (16, 1), (1000, 4)]:
        network = KerasNetwork(model, info)
        blocked = FrameModel(network, block_frames=block_frames, batch_blocks=batch_blocks).heads(noise_fft)
        np.testing.assert_allclose(blocked["active"], whole_song, atol=1e-6)
    streaming = StreamingTranscriber(FrameModel(KerasNetwork(model, info)))
    audio_buffers = frames_from_audio(np.random.default_rng(1).normal(0, 0.1, 80 * 1024 + 300).astype(np.float32))
    rows = [row for row in (streaming.push(buffer) for buffer in audio_buffers) if row is not None]
    assert len(rows) == len(audio_buffers) - lookahead_frames
    rows += streaming.flush()
    np.testing.assert_allclose(np.stack(rows), whole_song, atol=1e-6)
    assert set(streaming.last_heads) == {"active", "onset", "energy"}


def test_audio_in_arbitrary_blocks_gives_the_same_transcription(noise_fft) -> None:
    from trainer.inference.transcribe import transcribe_blocks

    model, info = untrained_model(5, 1)
    frame_model = FrameModel(KerasNetwork(model, info), block_frames=9, batch_blocks=2)
    audio = np.random.default_rng(1).normal(0, 0.1, 80 * 1024 + 300).astype(np.float32)
    whole = transcribe_audio(audio, frame_model, DecodeSettings(0.5, 0.5, 0.0))
    pieces = transcribe_blocks(np.split(audio, [1, 1500, 1501, 40000]), frame_model, DecodeSettings(0.5, 0.5, 0.0))
    assert whole.probability.shape == (81, 88) and whole.frame_times[1] == pytest.approx(HOP_SECONDS)
    np.testing.assert_allclose(pieces.probability, whole.probability, atol=1e-6)
    np.testing.assert_array_equal(pieces.notes, whole.notes)
    assert whole.audio_seconds == pytest.approx(len(audio) / 44100)
