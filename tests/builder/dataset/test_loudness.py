"""``attack_energy``: how loud a note of each key and velocity is through the train banks, and back again.

A note rendered at velocity ``v`` must read back as about ``v`` through the curve the store records: the
model's velocities are only right if this round trip is.
"""

from __future__ import annotations

import numpy as np
import pytest

from builder import banks
from builder.dataset.loudness import ATTACK_BUFFERS, ATTACK_VELOCITIES, attack_energy
from builder.dataset.render import render_notes
from pianoscribe.constants import BUFFER_SIZE, LOWEST_KEY
from pianoscribe.defaults import defaults
from tests.builder.conftest import SOUNDING_KEYS, notes, tone_bank
from trainer.features import energy_target, energy_to_velocity, velocity_curve

SETTINGS = defaults("synth")
ENERGY_SCALE = 3.0


@pytest.fixture(scope="module")
def bank_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loudness")
    paths = {"bright": folder / "bright.h5", "quiet": folder / "quiet.h5"}
    # one layer: the gain is linear in velocity (with two, a note just above a layer's velocity can be quieter
    # than one at it, and no curve can tell those apart)
    banks.write_bank(tone_bank("bright", layers=1, decay=3.0), paths["bright"])
    quiet = tone_bank("quiet", layers=1, decay=3.0)
    quiet.audio *= 0.25  # the same tones 12 dB down
    banks.write_bank(quiet, paths["quiet"])
    return paths


def test_louder_with_velocity_on_every_sounding_key_and_silent_elsewhere(bank_files):
    measured = attack_energy([bank_files["bright"]], SETTINGS)
    key_energy = np.asarray(measured["key_energy"])
    assert measured["velocities"] == list(ATTACK_VELOCITIES) and key_energy.shape == (88, len(ATTACK_VELOCITIES))
    sounding = np.asarray(SOUNDING_KEYS) - LOWEST_KEY
    assert np.all(np.diff(key_energy[sounding], axis=1) > 0)
    assert np.all(np.delete(key_energy, sounding, axis=0) < 1e-9)
    assert attack_energy([bank_files["bright"]], SETTINGS) == measured  # deterministic


def test_the_median_over_banks_lies_between_them(bank_files):
    bright, quiet = (
        np.asarray(attack_energy([bank_files[name]], SETTINGS)["key_energy"]) for name in ("bright", "quiet")
    )
    both = np.asarray(attack_energy([bank_files["bright"], bank_files["quiet"]], SETTINGS)["key_energy"])
    sounding = np.asarray(SOUNDING_KEYS) - LOWEST_KEY
    np.testing.assert_allclose(quiet[sounding], bright[sounding] / 16, rtol=1e-3)  # energy: amplitude squared
    assert np.all((both[sounding] > quiet[sounding]) & (both[sounding] < bright[sounding]))


@pytest.mark.parametrize("offset", [0, 300, 900])
def test_a_rendered_note_reads_back_as_its_velocity(bank_files, offset):
    """Render lone notes at velocities between the curve's points, at onsets anywhere in a buffer; the loudest
    attack buffer's energy, through the curve, gives back the velocity (to within rounding of the log-log map)."""
    curve = velocity_curve(attack_energy([bank_files["bright"]], SETTINGS), ENERGY_SCALE)
    bank = banks.read_bank(bank_files["bright"])
    for key in (60, 72):
        for velocity in (20, 57, 100, 127):
            start = (BUFFER_SIZE + offset) / 44100
            audio = render_notes(notes((start, start + 0.3, key, velocity)), bank, SETTINGS)
            buffers = audio[BUFFER_SIZE : (1 + ATTACK_BUFFERS) * BUFFER_SIZE].reshape(ATTACK_BUFFERS, BUFFER_SIZE)
            loudest = energy_target((buffers.astype(np.float64) ** 2).sum(axis=1), ENERGY_SCALE).max()
            read = energy_to_velocity(np.array([loudest]), np.array([key - LOWEST_KEY]), curve)
            assert abs(int(read[0]) - velocity) <= 0.06 * velocity + 1, (key, velocity, offset, int(read[0]))
