"""SoundFonts whose filter is driven by modulators render with it open; others render as authored.

The SoundFonts are written here: one looped sample (220 Hz plus 3520 Hz), one instrument zone with a ~300 Hz
low-pass filter, and, in one of them, a velocity -> filter-cutoff modulator like MuseScore General's piano.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from builder.banks.sources.soundfont import soundfont_recordings
from builder.banks.sources.soundfont_filter import filter_is_modulated, without_filter

SAMPLE_RATE = 44100
LOW_HZ, HIGH_HZ = 220.0, 3520.0  # whole cycles in a 0.1 s loop, so the loop is seamless
FILTER_300_HZ_CENTS = 6237  # initialFilterFc in absolute cents: 8.176 Hz x 2 ** (6237 / 1200) ~ 300 Hz
VELOCITY_TO_CUTOFF = (2, 8, 2400, 0, 0)  # source: note-on velocity, destination: initialFilterFc, +2400 cents


def _chunk(name: bytes, payload: bytes) -> bytes:
    return name + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def tiny_soundfont(modulators: list[tuple[int, int, int, int, int]], filter_cents: int | None) -> bytes:
    """A valid SoundFont 2 file: preset 0:0 -> one instrument zone -> one looped two-tone sample (root key 69)."""
    time = np.arange(int(0.1 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.4 * np.sin(2 * np.pi * LOW_HZ * time) + 0.4 * np.sin(2 * np.pi * HIGH_HZ * time)
    pcm = (np.concatenate([tone, np.zeros(46)]) * 32767).astype("<i2").tobytes()
    n = len(time)
    name = lambda text: text.encode().ljust(20, b"\0")  # noqa: E731
    preset_generators = [(41, 0)]  # instrument 0
    instrument_generators = ([(8, filter_cents)] if filter_cents is not None else []) + [(54, 1), (53, 0)]
    pdta = _list(
        b"pdta",
        _chunk(
            b"phdr",
            struct.pack("<20sHHHIII", name("Piano"), 0, 0, 0, 0, 0, 0)
            + struct.pack("<20sHHHIII", name("EOP"), 0, 0, 1, 0, 0, 0),
        ),
        _chunk(b"pbag", struct.pack("<HH", 0, 0) + struct.pack("<HH", len(preset_generators), len(modulators))),
        _chunk(b"pmod", b"".join(struct.pack("<HHhHH", *m) for m in modulators) + bytes(10)),
        _chunk(b"pgen", b"".join(struct.pack("<Hh", *g) for g in preset_generators) + bytes(4)),
        _chunk(b"inst", struct.pack("<20sH", name("Tone"), 0) + struct.pack("<20sH", name("EOI"), 1)),
        _chunk(b"ibag", struct.pack("<HH", 0, 0) + struct.pack("<HH", len(instrument_generators), 0)),
        _chunk(b"imod", bytes(10)),
        _chunk(b"igen", b"".join(struct.pack("<Hh", *g) for g in instrument_generators) + bytes(4)),
        _chunk(
            b"shdr",
            struct.pack("<20sIIIIIBbHH", name("Tone"), 0, n, 0, n, SAMPLE_RATE, 69, 0, 0, 1)
            + struct.pack("<20sIIIIIBbHH", name("EOS"), 0, 0, 0, 0, 0, 0, 0, 0, 0),
        ),
    )
    info = _list(
        b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"), _chunk(b"INAM", b"tiny\0\0")
    )
    body = b"sfbk" + info + _list(b"sdta", _chunk(b"smpl", pcm)) + pdta
    return b"RIFF" + struct.pack("<I", len(body)) + body


def high_to_low(recording: np.ndarray) -> float:
    """Level of the 3520 Hz partial relative to the 220 Hz one, over the note's first half second."""
    window = recording[: SAMPLE_RATE // 2]
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    frequencies = np.fft.rfftfreq(len(window), 1 / SAMPLE_RATE)
    level = lambda hz: spectrum[np.abs(frequencies - hz) < 10].max()  # noqa: E731
    return float(level(HIGH_HZ) / level(LOW_HZ))


SETTINGS = {"layers": 3, "max_seconds": 1.0, "tail_db": -70.0, "fade_seconds": 0.01, "normalize_rms": 0.1}


def test_a_preset_whose_filter_follows_velocity_is_rendered_with_it_open():
    soundfont = tiny_soundfont([VELOCITY_TO_CUTOFF], FILTER_300_HZ_CENTS)
    assert filter_is_modulated(soundfont)
    assert not filter_is_modulated(soundfont, bank=0, program=1)  # no such preset
    recordings, extra = soundfont_recordings(soundfont, "tiny.sf2", SETTINGS, [69])
    assert "filter open" in extra["derivation"]
    for layer in range(3):
        assert high_to_low(recordings[(69, layer)]) > 0.5  # the 3520 Hz partial is heard (equal in the sample)


def test_a_static_filter_without_modulators_is_rendered_as_authored():
    soundfont = tiny_soundfont([], FILTER_300_HZ_CENTS)
    assert not filter_is_modulated(soundfont)
    recordings, extra = soundfont_recordings(soundfont, "tiny.sf2", SETTINGS, [69])
    assert "filter open" not in extra["derivation"]
    assert high_to_low(recordings[(69, 2)]) < 0.05  # the 300 Hz low-pass takes the 3520 Hz partial down


def test_opening_the_filter_changes_only_filter_generators():
    soundfont = tiny_soundfont([VELOCITY_TO_CUTOFF], FILTER_300_HZ_CENTS)
    opened = without_filter(soundfont)
    assert len(opened) == len(soundfont)
    changed = [i for i, (a, b) in enumerate(zip(soundfont, opened)) if a != b]
    position = soundfont.find(b"igen") + 8  # the first instrument generator: initialFilterFc
    assert changed and all(position + 2 <= i < position + 4 for i in changed)
    assert struct.unpack_from("<Hh", opened, position) == (8, 13500)
    assert without_filter(tiny_soundfont([], None)) == tiny_soundfont([], None)  # nothing to open


@pytest.mark.parametrize("garbage", [b"", b"RIFF\x04\x00\x00\x00sfbk", b"RIFF\x10\x00\x00\x00sfbkLIST" + bytes(64)])
def test_unreadable_files_are_left_for_the_renderer_to_report(garbage):
    assert not filter_is_modulated(garbage)
    assert without_filter(garbage) == garbage
