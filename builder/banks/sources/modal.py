"""A modal (additive, physically informed) piano: a training instrument whose bass behaves like a real grand's.

Why: the two SoundFont pianos we may train on put a bass note's energy at its fundamental and second
harmonic, exactly in tune, while a real grand's lowest octaves radiate almost nothing at the fundamental, carry
their energy in stretched, inharmonic partials 5-15x above it, beat (two or three detuned strings per key),
and are stretch-tuned. A model that never heard such a bass misses it on a real piano. This module renders one
such instrument per seed from textbook piano acoustics (Fletcher & Rossing, *The Physics of Musical
Instruments*, ch. 12; Bank & Sujbert's modal piano models), with the instrument's constants drawn once per seed:

* partial ``n`` of a key at ``n f0 sqrt(1 + B n^2)``, with the inharmonicity ``B`` following a grand's curve
  (about 2e-4 in the wound bass, 4e-4 at C4, 1e-2 at C8) and ``f0`` stretch-tuned (bass flat, treble sharp);
* hammer excitation: a low-pass on the partial series whose cutoff rises with velocity (soft blows excite
  fewer partials) times the comb of the strike point (partials near multiples of 1/beta missing);
* radiation: a soundboard high-pass (a grand radiates little below ~100 Hz) and a smooth random formant curve;
* decay: two-stage (prompt and aftersound), faster for higher partials and higher keys; beating between
  unison strings as a slow amplitude modulation per partial;
* a short low-passed noise "thump" at the attack.

Every (key, layer) is a sum of the same key's partial waveforms with layer-dependent weights, so a whole
bank renders in seconds (the partial sums in the engine, ``builder.engine.modal_tones``). The result passes
through the same attack trim, tail cut and loudness normalization as recorded banks
(``builder.banks.processing``). Built-in names: ``modal`` (seed 0) and ``modal-N`` (seed N).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from builder.banks.layers import layer_velocities
from builder.banks.processing import PRE_ONSET_SECONDS, RecordingGrid, max_samples, trim_attack, trim_tail
from builder.engine import modal_tones
from pianoscribe import keyboard
from pianoscribe.constants import SAMPLE_RATE

MAX_PARTIAL_HZ = 16000.0  # partials above this are left out (a piano's are > 60 dB down there)
MAX_PARTIALS = 160
ATTACK_SECONDS = 0.002  # partial rise time (the hammer contact is 1-4 ms)
THUMP_SECONDS = 0.02  # decay time constant of the attack noise


@dataclass(frozen=True)
class ModalPiano:
    """The constants of one instrument (drawn from a seed by ``draw_instrument``)."""

    seed: int
    log10_inharmonicity: tuple[float, ...]  # log10 B at ``INHARMONICITY_KEYS``
    stretch_cents_a0: float  # A0 this many cents flat ...
    stretch_cents_c8: float  # ... C8 this many cents sharp
    strike_position: float  # hammer position as a fraction of the string length
    soundboard_highpass_hz: float  # radiation high-pass corner (order 2)
    formant_db: tuple[float, ...]  # smooth radiation curve: dB at ``FORMANT_HZ``
    rolloff_bass: float  # partial amplitudes fall as 1 / n ** this at A0 (near-flat) ...
    rolloff_treble: float  # ... and this from C4 up, before the hammer filter
    brightness_ff: float  # hammer cutoff at velocity 127, in kHz at C4 (scaled by f0 ** 0.25)
    brightness_pp: float  # ... and at velocity 1
    dynamic_range_db: float  # level difference between velocity 127 and velocity 1
    decay_seconds_c4: float  # prompt T60 of C4's fundamental
    aftersound_ratio: float  # aftersound decays this many times slower ...
    aftersound_level: float  # ... starting at this share of the amplitude
    beating_depth: float  # amplitude-modulation depth of the unison beating
    detune_cents: float  # unison mistuning, scales the beat rate
    thump_db: float  # attack noise level re the partials, at velocity 127


INHARMONICITY_KEYS = (21, 36, 48, 60, 72, 84, 96, 108)
INHARMONICITY_LOG10 = (-3.6, -4.0, -3.7, -3.4, -3.1, -2.7, -2.3, -1.9)  # a concert grand, Fletcher & Rossing
FORMANT_HZ = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0, 12800.0)


def draw_instrument(seed: int) -> ModalPiano:
    """One instrument's constants, uniformly within ranges measured on real grands and uprights."""
    rng = np.random.default_rng([seed, 0x6D6F64])
    return ModalPiano(
        seed=int(seed),
        log10_inharmonicity=tuple(float(value + rng.uniform(-0.25, 0.25)) for value in INHARMONICITY_LOG10),
        stretch_cents_a0=float(rng.uniform(10.0, 35.0)),
        stretch_cents_c8=float(rng.uniform(10.0, 35.0)),
        strike_position=float(rng.uniform(1 / 9, 1 / 7)),
        soundboard_highpass_hz=float(rng.uniform(70.0, 160.0)),
        formant_db=tuple(float(value) for value in rng.uniform(-6.0, 6.0, len(FORMANT_HZ))),
        rolloff_bass=float(rng.uniform(0.0, 0.4)),
        rolloff_treble=float(rng.uniform(0.6, 1.2)),
        brightness_ff=float(rng.uniform(3.0, 6.0)),
        brightness_pp=float(rng.uniform(0.5, 1.0)),
        dynamic_range_db=float(rng.uniform(28.0, 38.0)),
        decay_seconds_c4=float(rng.uniform(2.5, 8.0)),
        aftersound_ratio=float(rng.uniform(3.0, 8.0)),
        aftersound_level=float(rng.uniform(0.05, 0.25)),
        beating_depth=float(rng.uniform(0.1, 0.5)),
        detune_cents=float(rng.uniform(0.3, 1.5)),
        thump_db=float(rng.uniform(-30.0, -18.0)),
    )


def describe(instrument: ModalPiano) -> dict:
    """The instrument as plain numbers, for the bank's attrs."""
    return {
        name: (list(value) if isinstance(value, tuple) else round(value, 6) if isinstance(value, float) else value)
        for name, value in asdict(instrument).items()
    }


def fundamental_hz(instrument: ModalPiano, key: int) -> float:
    """Stretch-tuned fundamental (``keyboard.stretch_cents`` with this instrument's amounts at A0 and C8)."""
    cents = keyboard.stretch_cents(key, instrument.stretch_cents_a0, instrument.stretch_cents_c8)
    return keyboard.key_frequency(key) * 2.0 ** (cents / 1200.0)


def inharmonicity(instrument: ModalPiano, key: int) -> float:
    """B of the key's strings, interpolated log-linearly between the instrument's anchor keys."""
    return 10.0 ** float(np.interp(key, INHARMONICITY_KEYS, instrument.log10_inharmonicity))


def partial_frequencies(instrument: ModalPiano, key: int) -> np.ndarray:
    """``n f0 sqrt(1 + B n^2)`` for every partial below ``MAX_PARTIAL_HZ`` (at least the fundamental)."""
    f0 = fundamental_hz(instrument, key)
    numbers = np.arange(1, MAX_PARTIALS + 1, dtype=np.float64)
    frequencies = numbers * f0 * np.sqrt(1.0 + inharmonicity(instrument, key) * numbers**2)
    return frequencies[(frequencies < MAX_PARTIAL_HZ) | (numbers == 1)]


def radiation_gain(instrument: ModalPiano, frequency_hz: np.ndarray) -> np.ndarray:
    """Soundboard high-pass (order 2) times the smooth formant curve, as a linear amplitude."""
    ratio = (frequency_hz / instrument.soundboard_highpass_hz) ** 2
    highpass = ratio / np.sqrt(1.0 + ratio**2)
    formant_db = np.interp(
        _libm(math.log2, frequency_hz), _libm(math.log2, np.array(FORMANT_HZ)), instrument.formant_db
    )
    return highpass * _libm(lambda db: 10.0 ** (db / 20.0), formant_db)


def partial_weights(instrument: ModalPiano, key: int, velocity: float, frequency_hz: np.ndarray) -> np.ndarray:
    """Initial amplitude of each partial for one hammer blow (before loudness normalization)."""
    numbers = np.arange(1, frequency_hz.shape[0] + 1, dtype=np.float64)
    strength = velocity / 127.0
    log_cutoff = math.log(instrument.brightness_pp) + strength * math.log(
        instrument.brightness_ff / instrument.brightness_pp
    )
    cutoff_hz = 1000.0 * math.exp(log_cutoff) * (fundamental_hz(instrument, key) / 261.6) ** 0.25
    cutoff_hz = max(cutoff_hz, 1.5 * float(frequency_hz[0]))
    hammer = 1.0 / (1.0 + np.square(np.square(frequency_hz / cutoff_hz)))
    comb = np.abs(_libm(math.sin, np.pi * numbers * instrument.strike_position)) + 0.05
    level = 10.0 ** (-instrument.dynamic_range_db * (1.0 - strength) / 20.0)
    rolloff = float(np.interp(key, (21, 60), (instrument.rolloff_bass, instrument.rolloff_treble)))
    return (
        level
        * hammer
        * comb
        * _libm(lambda number: number**-rolloff, numbers)
        * radiation_gain(instrument, frequency_hz)
    )


def decay_rates(instrument: ModalPiano, key: int, frequency_hz: np.ndarray) -> np.ndarray:
    """Prompt decay rate (1/s, amplitude) of each partial: faster for high keys and high partials."""
    t60_fundamental = instrument.decay_seconds_c4 * (261.6 / fundamental_hz(instrument, key)) ** 0.6
    t60_fundamental = min(max(t60_fundamental, 0.8), 30.0)
    rate_fundamental = math.log(1000.0) / t60_fundamental
    partial_ratio = frequency_hz / frequency_hz[0]
    return rate_fundamental * (
        1.0 + _libm(lambda hz: (hz / 4000.0) ** 1.5, frequency_hz) + 0.3 * np.sqrt(partial_ratio - 1.0)
    )


def render_key(
    instrument: ModalPiano, key: int, velocities: np.ndarray, n_samples: int, rng: np.random.Generator, threads: int = 0
) -> list[np.ndarray]:
    """One recording per velocity of ``key``: the same partial waveforms, weighted per hammer blow."""
    frequency_hz = partial_frequencies(instrument, key)
    rates = decay_rates(instrument, key, frequency_hz)
    phases = np.asarray(rng.uniform(0.0, 2.0 * np.pi, frequency_hz.shape[0]))
    detune_cents = instrument.detune_cents * np.asarray(rng.uniform(0.5, 1.5, frequency_hz.shape[0]))
    beat_hz = frequency_hz * (_libm(lambda cents: 2.0 ** (cents / 1200.0), detune_cents) - 1.0)
    beat_phases = np.asarray(rng.uniform(0.0, 2.0 * np.pi, frequency_hz.shape[0]))
    weights = np.stack([partial_weights(instrument, key, float(velocity), frequency_hz) for velocity in velocities])
    tones = modal_tones(
        frequency_hz,
        phases,
        rates,
        beat_hz,
        beat_phases,
        weights,
        aftersound_level=instrument.aftersound_level,
        aftersound_ratio=instrument.aftersound_ratio,
        beating_depth=instrument.beating_depth,
        attack_seconds=ATTACK_SECONDS,
        n_samples=n_samples,
        threads=threads,
    )
    thump = _thump(n_samples, rng)
    recordings = []
    for velocity, tone in zip(velocities, tones):
        strength = float(velocity) / 127.0
        thump_gain = 10.0 ** ((instrument.thump_db - 12.0 * (1.0 - strength)) / 20.0)
        tone = tone.copy()
        tone += np.float32(thump_gain * math.sqrt(float(np.mean(np.square(tone[:2205], dtype=np.float64))))) * thump
        recordings.append(tone)
    return recordings


def _thump(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS-at-onset low-passed noise decaying over ``THUMP_SECONDS`` (the hammer and key bed)."""
    from scipy import signal

    length = min(n_samples, int(8 * THUMP_SECONDS * SAMPLE_RATE))
    noise = rng.standard_normal(length)
    burst = signal.sosfilt(_butterworth_lowpass(float(rng.uniform(300.0, 1500.0))), noise)
    burst *= _libm(lambda n: math.exp(-n / (THUMP_SECONDS * SAMPLE_RATE)), np.arange(length, dtype=np.float64))
    burst /= math.sqrt(float(np.mean(np.square(burst[: int(THUMP_SECONDS * SAMPLE_RATE)])))) + 1e-12
    thump = np.zeros(n_samples, dtype=np.float32)
    thump[:length] = burst
    return thump


def _butterworth_lowpass(cutoff_hz: float) -> np.ndarray:
    """The order-2 Butterworth low-pass of ``scipy.signal.butter(2, cutoff_hz, fs=44100, output="sos")`` (bilinear
    transform with pre-warping), its coefficients from scalar libm so they are the same bits on every machine."""
    warped = math.tan(math.pi * cutoff_hz / SAMPLE_RATE)
    norm = 1.0 / (1.0 + math.sqrt(2.0) * warped + warped * warped)
    b0 = warped * warped * norm
    return np.array(
        [
            [
                b0,
                2.0 * b0,
                b0,
                1.0,
                2.0 * (warped * warped - 1.0) * norm,
                (1.0 - math.sqrt(2.0) * warped + warped * warped) * norm,
            ]
        ]
    )


def _libm(function, values: np.ndarray) -> np.ndarray:
    """``function`` (of Python floats: glibc's scalar math) applied to each value.

    Why not numpy's ufuncs: numpy picks its vectorized exp/log/sin/pow per CPU at run time (AVX-512 versions
    differ from the others in the last bit), and a bank must be the same bytes on every machine; +, -, x, /
    and sqrt are exactly rounded everywhere, so numpy is used for those.
    """
    values = np.asarray(values, dtype=np.float64)
    return np.array([function(float(value)) for value in values.ravel()], dtype=np.float64).reshape(values.shape)


def render_bank(
    seed: int, keys: list[int], velocities: np.ndarray, n_samples: int, threads: int = 0
) -> tuple[dict, dict]:
    """Recordings ``{(key, layer): audio}`` of the instrument drawn from ``seed``, and its description.

    Each key has its own random stream (seed, key), so a subset of keys renders the same audio as the whole.
    """
    instrument = draw_instrument(seed)
    recordings = {}
    for key in keys:
        rng = np.random.default_rng([seed, key])
        for layer, audio in enumerate(render_key(instrument, key, velocities, n_samples, rng, threads)):
            recordings[(key, layer)] = audio
    return recordings, describe(instrument)


MODAL_PATTERN = re.compile(r"^modal(?:-(\d{1,9}))?$")


def modal_seed(source: str) -> int | None:
    """The instrument seed of ``modal`` (0) or ``modal-N`` (N); None for any other source."""
    match = MODAL_PATTERN.match(source)
    return None if match is None else int(match.group(1) or 0)


def modal_recordings(seed: int, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict]:
    """The instrument of ``seed`` at each layer's velocity, trimmed like a recording (the attrs' wording is the
    one banks were first built with, so the bytes stay the same)."""
    n_samples = max_samples(settings) + int(round(PRE_ONSET_SECONDS * SAMPLE_RATE))
    rendered, instrument = render_bank(seed, wanted_keys, layer_velocities(int(settings["layers"])), n_samples)
    recordings = {
        grid_key: trim_tail(trim_attack(audio, settings, f"modal-{seed}"), settings)
        for grid_key, audio in rendered.items()
    }
    return recordings, {
        "derivation": "rendered: builder.modal, one hammer blow per layer velocity",
        "instrument": json.dumps(instrument),
    }


def builtin_recordings(seed: int, settings: dict, wanted_keys: list[int]) -> tuple[RecordingGrid, dict, str]:
    """The built-in ``modal`` / ``modal-N``: its recordings, attrs and source text."""
    recordings, extra = modal_recordings(seed, settings, wanted_keys)
    return recordings, extra, f"builder.modal, instrument seed {seed}"
