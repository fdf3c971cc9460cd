"""Fuzzing the readers of user files: random bytes and damaged copies of a valid file give one-line errors.

What a reader may do with any bytes: return, or raise :class:`UserError` whose one-line message starts with
the file's name. Never another exception type, never a numpy ``RuntimeWarning`` (a number computed from
garbage), never a hang, never a crash of libsndfile or libhdf5. The damage starts from a small valid file
written here: flipped bits and bytes (often in the header), a cut, a spliced run of random bytes or of the
file's own bytes, an overwritten header, a header field set to an edge value; or the bytes are random.

The C-backed readers (soundfile, h5py) read their inputs in a subprocess (``python -m tests.test_fuzz``), under
a timeout and a memory limit, so a segfault, a hang or a runaway allocation fails the test naming the input
instead of taking pytest down; their inputs come from hypothesis all the same. The pure-Python readers run
under hypothesis in-process (failures shrink). Deterministic: derandomized, no example database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pianoscribe.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
WORKER_TIMEOUT_SECONDS = 60  # each worker has seconds of work: only a hang comes near
WORKER_MEMORY_BYTES = 1 << 30  # address space a worker may add to what its imports took
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HEADER_BYTES = 64  # where most flips go: the header decides how the rest is read
# The valid recordings hold 0.05 s. Damage to the channels or sample format stretches that a few times,
# a lowest believable rate (1 kHz) up to 48 times; minutes mean a rate no recording has.
MAX_DECODED_SECONDS = 30


# ---------------------------------------------------------------------------------------------- damage


def _flip(draw: Callable, data: bytes) -> bytes:
    """Change 1-8 bytes (a bit or the whole byte), half of them in the header."""
    damaged = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        limit = min(len(damaged), HEADER_BYTES) if draw(st.booleans()) else len(damaged)
        index = draw(st.integers(0, limit - 1))
        if draw(st.booleans()):
            damaged[index] ^= 1 << draw(st.integers(0, 7))
        else:
            damaged[index] = draw(st.integers(0, 255))
    return bytes(damaged)


def _truncate(draw: Callable, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data) - 1))]


def _splice(draw: Callable, data: bytes) -> bytes:
    """Replace a run of bytes by random bytes or by a run of the file's own bytes from elsewhere."""
    start = draw(st.integers(0, len(data)))
    stop = draw(st.integers(start, min(len(data), start + 256)))
    if draw(st.booleans()):
        insert = draw(st.binary(max_size=32))
    else:
        source = draw(st.integers(0, len(data) - 1))
        insert = data[source : source + draw(st.integers(1, 64))]
    return data[:start] + insert + data[stop:]


def _overwrite_header(draw: Callable, data: bytes) -> bytes:
    size = draw(st.integers(1, HEADER_BYTES))
    return draw(st.binary(min_size=size, max_size=size)) + data[size:]


INTERESTING = (0, 1, 2, 7, 255, 256, 999, 1000, 0x7FFF, 0xFFFF, 768_000, 768_001, 2**31 - 1, 2**32 - 1)


def _interesting_field(draw: Callable, data: bytes) -> bytes:
    """A 2- or 4-byte header field (a rate, a channel count, a size) set to an edge value."""
    width = draw(st.sampled_from([2, 4]))
    offset = draw(st.integers(0, max(0, min(len(data), HEADER_BYTES) - width) // 2)) * 2
    value = draw(st.sampled_from(INTERESTING)) % (1 << (8 * width))
    return data[:offset] + value.to_bytes(width, "little") + data[offset + width :]


DAMAGE = (_flip, _truncate, _splice, _overwrite_header, _interesting_field)


@st.composite
def damaged_copies(draw: Callable, valid: bytes) -> bytes:
    """``valid`` with 1-3 kinds of damage applied in turn."""
    data = valid
    for _ in range(draw(st.integers(1, 3))):
        data = draw(st.sampled_from(DAMAGE))(draw, data) if data else draw(st.binary(max_size=64))
    return data


def damaged_or_random(*valid: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=1024), *(damaged_copies(seed) for seed in valid))


def assert_user_error_or_nothing(read: Callable[[Path], Any], path: Path) -> None:
    """``read(path)`` returns or raises a one-line UserError naming ``path``; a RuntimeWarning is a failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            read(path)
        except UserError as error:
            message = str(error)
            assert message.startswith(f"{path}: ") and "\n" not in message, message


# ---------------------------------------------------------------------------------------------- valid files


def valid_wav_and_flac(folder: Path) -> dict[str, bytes]:
    """0.05 s valid recordings: 16-bit and float WAV, stereo 24-bit WAV at 48 kHz, 16-bit FLAC."""
    import soundfile

    time = np.arange(2205) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * time)).astype(np.float32)
    files = {
        "pcm16.wav": (tone, 44100, "PCM_16"),
        "float.wav": (tone, 44100, "FLOAT"),  # at 44.1 kHz a damaged sample is passed on as it reads
        "stereo24.wav": (np.stack([tone, -tone], axis=1), 48000, "PCM_24"),
        "pcm16.flac": (tone, 44100, "PCM_16"),
    }
    for name, (signal, rate, subtype) in files.items():
        soundfile.write(folder / name, signal, rate, subtype=subtype)
    return {name: (folder / name).read_bytes() for name in files}


def valid_bank(folder: Path) -> bytes:
    """A two-layer bank with one key recorded: every dataset and attribute a bank has, 14 kB."""
    from builder.banks import Bank, write_bank

    offsets, lengths = np.zeros((88, 2), np.int64), np.zeros((88, 2), np.int64)
    offsets[39], lengths[39] = (0, 100), (100, 200)
    audio = np.sin(np.arange(300, dtype=np.float32) * 0.2).astype(np.float32)
    bank = Bank("fuzz", 44100, np.array([40, 100], np.float32), audio, offsets, lengths, "tests", {"derived": 1})
    write_bank(bank, folder / "valid.h5")
    return (folder / "valid.h5").read_bytes()


def valid_midi(folder: Path) -> bytes:
    """Two tracks (piano with a sustain pedal, drums), a tempo: what the MIDI reader walks through."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=100)
    piano, drums = pretty_midi.Instrument(0), pretty_midi.Instrument(0, is_drum=True)
    for index, key in enumerate((60, 64, 67, 72)):
        piano.notes.append(pretty_midi.Note(velocity=80, pitch=key, start=0.3 * index, end=0.3 * index + 0.4))
    piano.control_changes += [pretty_midi.ControlChange(64, 100, 0.1), pretty_midi.ControlChange(64, 0, 1.0)]
    drums.notes.append(pretty_midi.Note(velocity=90, pitch=36, start=0.0, end=0.1))
    midi.instruments += [piano, drums]
    midi.write(str(folder / "valid.mid"))
    return (folder / "valid.mid").read_bytes()


def valid_midi_json_document() -> dict:
    """Three notes in four buffers, one across a buffer boundary, one at the top key."""
    from builder.corpus import clean_notes
    from builder.corpus.sources.midi_json import midi_json_from_notes

    return midi_json_from_notes(clean_notes([0.0, 0.01, 0.06], [0.03, 0.05, 0.08], [60, 64, 108], [80, 1, 127]))


# ---------------------------------------------------------------------------------------------- in-process


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def midi_bytes(folder: Path) -> bytes:
    return valid_midi(folder)


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_midi_reader_survives_damaged_files(folder: Path, midi_bytes: bytes, data: st.DataObject) -> None:
    from builder.corpus.sources.midi import notes_from_midi

    path = folder / "damaged.mid"
    path.write_bytes(data.draw(damaged_or_random(midi_bytes)))
    assert_user_error_or_nothing(notes_from_midi, path)


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from([10**400, 2**63, -(2**63) - 1, 1024 * 10**30, 1e308]),  # beyond float64 / int64
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["pianoNoteNum", "velocity", "sampleEndIndex", "0", "x"]), children, max_size=3
        )
    ),
    max_leaves=6,
)


@st.composite
def damaged_documents(draw: Callable, document: dict) -> str:
    """The document with one value, one buffer or one buffer key replaced; or nested past the parser's limit."""
    document = json.loads(json.dumps(document))
    buffer = draw(st.sampled_from(sorted(document)))
    choice = draw(st.integers(0, 4))
    if choice == 0:
        event = draw(st.sampled_from(document[buffer]))
        event[draw(st.sampled_from(sorted(event)))] = draw(JSON_VALUES)
    elif choice == 1:
        document[buffer] = draw(JSON_VALUES)
    elif choice == 2:
        key = draw(st.one_of(st.text(max_size=8), st.integers(-(2**80), 2**80).map(str)))
        document[key] = document.pop(buffer)
    elif choice == 3:
        return json.dumps(draw(JSON_VALUES))
    else:
        return "[" * draw(st.sampled_from([100, 100_000]))  # the parser recurses once per [
    return json.dumps(document)


@pytest.fixture(scope="module")
def midi_json_document() -> dict:
    return valid_midi_json_document()


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_midi_json_reader_survives_damaged_files(folder: Path, midi_json_document: dict, data: st.DataObject) -> None:
    from builder.corpus.sources.midi_json import notes_from_midi_json

    path = folder / "damaged.json"
    valid = json.dumps(midi_json_document).encode()
    damaged = st.one_of(damaged_or_random(valid), damaged_documents(midi_json_document).map(str.encode))
    path.write_bytes(data.draw(damaged))
    assert_user_error_or_nothing(notes_from_midi_json, path)


# ---------------------------------------------------------------------------------------------- in a subprocess


def examples(strategy: st.SearchStrategy, count: int) -> list:
    """``count`` deterministic draws of ``strategy`` (the same ones on every run)."""
    drawn: list = []

    @settings(FUZZ, max_examples=count, phases=[Phase.generate])
    @given(strategy)
    def draw(value: Any) -> None:
        drawn.append(value)

    draw()
    return drawn


def write_inputs(folder: Path, valid: dict[str, bytes], count: int) -> list[Path]:
    """``count`` damaged or random files, each with the suffix of the valid file it came from."""
    named = st.sampled_from(sorted(valid)).flatmap(
        lambda name: st.tuples(st.just(Path(name).suffix), damaged_or_random(valid[name]))
    )
    paths = []
    for index, (suffix, data) in enumerate(examples(named, count)):
        path = folder / f"{index:04d}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def run_worker(reader: str, paths: list[Path]) -> list[dict]:
    """Read every path in a subprocess; fail naming the input that hung it or crashed it."""
    command = [sys.executable, "-m", "tests.test_fuzz", reader, *map(str, paths)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT_SECONDS, cwd=ROOT)
    except subprocess.TimeoutExpired as timeout:
        output = timeout.stdout.decode() if isinstance(timeout.stdout, bytes) else timeout.stdout or ""
        pytest.fail(f"{reader} hung on {_last_started(output)}")
    assert done.returncode == 0, (
        f"{reader} worker died (exit {done.returncode}) reading {_last_started(done.stdout)}: {done.stderr[-2000:]}"
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _last_started(output: str) -> str:
    started = [line.removeprefix("reading ") for line in output.splitlines() if line.startswith("reading ")]
    return started[-1] if started else "(no input)"


def assert_only_user_errors(outcomes: list[dict], paths: list[Path]) -> None:
    assert len(outcomes) == len(paths)
    escaped = [outcome for outcome in outcomes if outcome["outcome"] == "escaped"]
    assert not escaped, escaped[:5]
    for outcome in outcomes:
        if outcome["outcome"] == "user_error":
            assert outcome["message"].startswith(f"{outcome['path']}: ") and "\n" not in outcome["message"]


@pytest.mark.slow
def test_audio_readers_survive_damaged_files(folder: Path) -> None:
    inputs = folder / "audio"
    inputs.mkdir()
    paths = write_inputs(inputs, valid_wav_and_flac(folder), count=600)

    assert_only_user_errors(run_worker("audio", paths), paths)


@pytest.mark.slow
def test_bank_reader_survives_damaged_files(folder: Path) -> None:
    inputs = folder / "banks"
    inputs.mkdir()
    paths = write_inputs(inputs, {"valid.h5": valid_bank(folder)}, count=1000)

    assert_only_user_errors(run_worker("bank", paths), paths)


def with_a_heap_walk_that_never_ends(valid: bytes) -> bytes:
    """The global heap's free-space object (index 0) given size 0: libhdf5 1.14 walks it forever."""
    data = bytearray(valid)
    position = data.find(b"GCOL") + 16  # signature, version, reserved, collection size: 16 bytes
    while int.from_bytes(data[position : position + 2], "little") != 0:
        size = int.from_bytes(data[position + 8 : position + 16], "little")
        position += 16 + -(-size // 8) * 8  # object header and the object, padded to 8 bytes
    data[position + 8 : position + 16] = bytes(8)
    return bytes(data)


def with_attrs_json_typed_as_a_sequence(valid: bytes) -> bytes:
    """One byte of attrs_json's datatype: variable-length string (0x01) -> a sequence of unknown kind (0x15)."""
    data = bytearray(valid)
    type_at = data.find(b"attrs_json\x00") + 16  # the name, padded to 8 bytes, then its datatype message
    assert data[type_at : type_at + 2] == b"\x19\x01"  # datatype version 1, class variable-length; a string
    data[type_at + 1] = 0x15
    return bytes(data)


def with_attrs_json_not_json(valid: bytes) -> bytes:
    return valid.replace(b'{"derived": 1}', b'{"derived"; 1}')


def with_a_damaged_btree_signature(valid: bytes) -> bytes:
    return valid.replace(b"TREE", b"TRXE", 1)


BANK_FINDINGS = {  # what read_bank did with each before it was fixed
    "hang.h5": (with_a_heap_walk_that_never_ends, "the global heap at byte"),  # looped forever
    "segfault.h5": (with_attrs_json_typed_as_a_sequence, "attribute attrs_json is"),  # killed the process
    "json.h5": (with_attrs_json_not_json, "damaged bank file (Expecting"),  # JSONDecodeError
    "btree.h5": (with_a_damaged_btree_signature, "damaged bank file ("),  # RuntimeError
}


@pytest.mark.slow
def test_the_damaged_banks_the_fuzzer_found_are_one_line_errors(folder: Path) -> None:
    valid = valid_bank(folder)
    inputs = folder / "found"
    inputs.mkdir()
    for name, (damage, _) in BANK_FINDINGS.items():
        (inputs / name).write_bytes(damage(valid))

    outcomes = {Path(outcome["path"]).name: outcome for outcome in run_worker("bank", sorted(inputs.iterdir()))}

    for name, (_, words) in BANK_FINDINGS.items():
        assert outcomes[name]["outcome"] == "user_error" and words in outcomes[name]["message"], outcomes[name]


# ---------------------------------------------------------------------------------------------- the worker


def _readers() -> dict[str, Callable[[Path], Any]]:
    """The readers by name, imported (the worker imports before it limits its memory)."""
    from builder.banks import read_bank
    from trainer.inference.audio import audio_info, read_mono

    def read_audio(path: Path) -> None:
        audio_info(path)
        audio = read_mono(path)
        if not np.isfinite(audio).all():
            raise ValueError("read_mono returned NaN or infinite samples")
        if audio.size > MAX_DECODED_SECONDS * 44100:
            raise ValueError(f"0.05 s of audio read as {audio.size / 44100:.0f} s (a sample rate no file has)")

    return {"audio": read_audio, "bank": read_bank}


def _limit_memory() -> None:
    """Let the worker's address space grow by WORKER_MEMORY_BYTES at most: a runaway allocation raises."""
    import resource

    status = Path("/proc/self/status").read_text()
    in_use = int(status.split("VmSize:")[1].split()[0]) * 1024
    limit = in_use + WORKER_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker(reader_name: str, paths: list[str]) -> None:
    """Read each file, one JSON line per outcome; "reading PATH" first, so a crash or a hang names it."""
    read = _readers()[reader_name]
    if sys.platform == "linux":
        _limit_memory()
    for name in paths:
        print(f"reading {name}", flush=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                read(Path(name))
            outcome = {"outcome": "ok"}
        except UserError as error:
            outcome = {"outcome": "user_error", "message": str(error)}
        except Exception as error:
            outcome = {"outcome": "escaped", "type": type(error).__name__, "message": str(error)[:300]}
        print(json.dumps({"path": name, **outcome}), flush=True)


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2:])
