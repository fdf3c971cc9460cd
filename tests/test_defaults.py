"""One source of defaults: the committed params.yaml holds exactly the built-in values, section by section, and
each section's built-in values are valid settings for the code that reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder import banks
from builder.dataset import synth
from pianoscribe.defaults import SECTIONS, defaults
from pianoscribe.params import load_params

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.mark.parametrize("section", SECTIONS)
def test_params_yaml_section_is_the_built_in_defaults(section):
    params = load_params(PARAMS_YAML)
    assert section in params.values, f"params.yaml has no '{section}' section"
    assert params.section(section) == defaults(section)


def test_the_defaults_pass_their_own_checks():
    assert banks.check_settings(defaults("bank")) == defaults("bank")
    assert synth.check_settings(defaults("synth")) == defaults("synth")
