"""Outputs of the builder commands never destroy what the project did not write, and name the user's paths."""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest
from typer.testing import CliRunner

from builder.cli import app
from pianoscribe.atomic import atomic_path, atomic_paths
from pianoscribe.errors import UserError


def run(*arguments: str):
    result = CliRunner().invoke(app, list(arguments))
    return result, result.output


def users_folder(path: Path) -> Path:
    (path / "holiday").mkdir(parents=True)
    (path / "holiday" / "notes.txt").write_text("keep me")
    return path


def test_corpus_and_bank_refuse_an_existing_folder_or_foreign_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = users_folder(tmp_path / "mine")
    text = tmp_path / "todo.h5"
    text.write_text("not a corpus")
    for command in (["corpus", "procedural", "--pieces", "1"], ["bank", "modal-4"]):
        for target, what in ((folder, "a folder"), (text, "a file")):
            result, output = run(*command, "--out", str(target))
            assert result.exit_code == 1, output
            assert f"{target}: exists and is {what} this project did not write" in " ".join(output.split())
    assert (folder / "holiday" / "notes.txt").read_text() == "keep me" and text.read_text() == "not a corpus"


def test_a_corpus_replaces_its_own_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for seed in ("1", "2"):
        result, output = run("corpus", "procedural", "--pieces", "1", "--seed", seed, "--out", "corpus.h5")
        assert result.exit_code == 0, output


def test_render_into_an_existing_folder_writes_inside_it(tiny_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    midi = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes.append(pretty_midi.Note(velocity=90, pitch=60, start=0.0, end=0.3))
    midi.instruments.append(piano)
    midi.write(str(tmp_path / "song.mid"))
    folder = users_folder(tmp_path / "renders")
    result, output = run("render", "song.mid", "--bank", str(tiny_files["test_bank"]), "-o", str(folder))
    assert result.exit_code == 0, output
    assert (folder / "song.wav").stat().st_size > 1000 and (folder / "holiday" / "notes.txt").exists()


def test_an_unwritable_destination_is_named_not_its_temporary(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    with pytest.raises(UserError) as raised, atomic_path(blocked / "out.csv") as temporary:
        temporary.write_text("never")
    assert str(raised.value).startswith(f"{blocked}: cannot write here") and ".tmp" not in str(raised.value)


def test_files_that_belong_together_appear_together_or_not_at_all(tmp_path):
    paths = [tmp_path / "song.mid", tmp_path / "song.csv"]
    with pytest.raises(RuntimeError), atomic_paths(paths) as temporaries:
        temporaries[0].write_text("midi")
        raise RuntimeError("the disk filled up while writing the second")
    assert not any(path.exists() for path in paths) and list(tmp_path.iterdir()) == []
    with atomic_paths(paths) as temporaries:
        for temporary in temporaries:
            temporary.write_text("done")
    assert all(path.read_text() == "done" for path in paths)
