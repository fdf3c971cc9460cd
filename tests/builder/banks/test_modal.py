"""The modal piano: a grand's acoustics (inharmonic, stretch-tuned, weak bass fundamentals), deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from builder import banks
from builder.banks.sources import modal
from pianoscribe import keyboard as notes

SHORT = {"layers": 4, "max_seconds": 0.5, "tail_db": -70.0, "fade_seconds": 0.01, "normalize_rms": 0.1}


def band_share(audio: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Share of the first 8192 samples' energy between two frequencies."""
    spectrum = np.abs(np.fft.rfft(audio[:8192] * np.hanning(8192))) ** 2
    frequencies = np.fft.rfftfreq(8192, 1 / 44100)
    return float(spectrum[(frequencies >= low_hz) & (frequencies < high_hz)].sum() / spectrum.sum())


@given(st.integers(0, 10_000), st.integers(21, 108))
@settings(max_examples=30, deadline=None)
def test_partials_are_stretched_and_inharmonic(seed, key):
    instrument = modal.draw_instrument(seed)
    partials = modal.partial_frequencies(instrument, key)
    ratios = partials / (np.arange(1, partials.size + 1) * partials[0])
    assert np.all(np.diff(ratios) > 0)  # each partial sharper than the last (stiff strings)
    assert partials.max() < modal.MAX_PARTIAL_HZ or partials.size == 1
    cents = 1200 * np.log2(modal.fundamental_hz(instrument, key) / notes.key_frequency(key))
    assert (cents <= 0) if key < 64 else (cents >= 0)  # stretch tuning: bass flat, treble sharp
    assert abs(cents) <= 35.0 * (44 / 43) ** 2  # at most 35 cents at A0 and B7, C8 a little beyond


def test_instruments_differ_by_seed_and_repeat_for_one_seed():
    assert modal.draw_instrument(3) == modal.draw_instrument(3)
    assert modal.draw_instrument(3) != modal.draw_instrument(4)


def test_render_is_deterministic_and_a_key_subset_renders_the_same_audio():
    velocities = np.array([40.0, 120.0])
    both, _ = modal.render_bank(5, [33, 60], velocities, 4096)
    alone, description = modal.render_bank(5, [60], velocities, 4096)
    np.testing.assert_array_equal(both[(60, 1)], alone[(60, 1)])
    assert description["seed"] == 5


def test_a_grand_bass_radiates_little_at_its_fundamental_and_the_middle_does():
    velocities = np.array([100.0])
    rendered, _ = modal.render_bank(0, [21, 72], velocities, 8192)
    a0, c5 = notes.key_frequency(21), notes.key_frequency(72)
    assert band_share(rendered[(21, 0)], 0, 1.5 * a0) < 0.02
    assert band_share(rendered[(21, 0)], 4.5 * a0, 40 * a0) > 0.5  # the energy is in high partials
    assert band_share(rendered[(72, 0)], 0.8 * c5, 1.2 * c5) > 0.2


def test_harder_blows_are_louder_and_brighter():
    velocities = np.array([20.0, 70.0, 120.0])
    rendered, _ = modal.render_bank(1, [48], velocities, 8192)
    rms = [np.sqrt(np.mean(rendered[(48, layer)] ** 2)) for layer in range(3)]
    bright = [band_share(rendered[(48, layer)], 1000, 16000) for layer in range(3)]
    assert rms[0] < rms[1] < rms[2] and rms[2] / rms[0] > 10  # 20 dB or more from soft to loud
    assert bright[0] < bright[1] < bright[2]


def test_modal_banks_build_through_the_bank_builder(tmp_path):
    bank = banks.build_bank("modal-7", settings=SHORT, keys=[21, 60, 108])
    assert bank.name == "modal-7" and bank.n_layers == 4
    present = bank.lengths[[0, 39, 87]]
    assert np.all(present > 0) and bank.lengths.sum() == present.sum()
    assert '"seed": 7' in bank.attrs["instrument"]
    path = banks.ensure_bank("modal-7", tmp_path, SHORT, Console(file=None, quiet=True))
    assert path == tmp_path / "banks" / "modal-7.h5" and path.exists()


@pytest.mark.parametrize("source", ["modal", "modal-12"])
def test_modal_names_are_built_in(source):
    assert banks.default_name(source) == source and banks.is_builtin(source)
    assert modal.modal_seed(source) == (0 if source == "modal" else 12)
    assert not banks.is_builtin("modal-x") and not banks.is_builtin("my-modal")


DIGEST_OF_A_RENDER = """
import hashlib, numpy as np
from builder import banks
from builder.banks.sources import modal
rendered, _ = modal.render_bank(0, [21, 60, 100], banks.layer_velocities(3), 8192, threads={threads})
print(hashlib.sha256(b"".join(rendered[key].tobytes() for key in sorted(rendered))).hexdigest())
"""


@pytest.mark.slow
def test_modal_audio_is_the_same_bits_whatever_the_blas_kernel_threads_and_cpu_features():
    """The cause of issue 11's irreproducible modal banks: a BLAS product sums in a kernel- and thread-dependent
    order, and numpy picks its vectorized exp/sin per CPU. Each run below takes another path."""
    import os
    import subprocess
    import sys

    environments = [
        {},
        {"OPENBLAS_NUM_THREADS": "1"},
        {"OPENBLAS_CORETYPE": "Sandybridge"},
        {"NPY_DISABLE_CPU_FEATURES": "X86_V3"},
    ]
    digests = set()
    for index, extra in enumerate(environments):
        code = DIGEST_OF_A_RENDER.format(threads=1 + index % 2)
        completed = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, **extra}, capture_output=True, text=True, check=True
        )
        digests.add(completed.stdout.strip())
    assert len(digests) == 1
