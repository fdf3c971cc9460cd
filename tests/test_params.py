"""``--params``: through the real CLIs, a bad params file is one line naming it; a missing section warns.

Each run is a command that does little work (one short procedural piece) or fails fast (a missing model), in
a scratch folder without a ``params.yaml``, so "no --params" means the built-in defaults.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from builder.cli import app as builder_app
from pianoscribe.defaults import SECTIONS

BAD_FILES = [
    ("empty.yaml", "", "the params file is empty"),
    ("comments.yaml", "# nothing but a comment\n", "the params file is empty"),
    ("list.yaml", "- corpus\n- bank\n", "expected a mapping of stage sections, got list"),
    ("scalar.yaml", "42\n", "expected a mapping of stage sections, got int"),
    ("section.yaml", "corpuss:\n  procedural:\n    pieces: 1\n", "unknown section 'corpuss'"),
    ("key.yaml", "corpus:\n  procedural:\n    sede: 3\n", "unknown parameter corpus.procedural.sede"),
    ("top_key.yaml", "corpus:\n  proceduarl: {}\n", "unknown parameter corpus.proceduarl"),
    ("not_mapping.yaml", "corpus: 3\n", "'corpus' must be a mapping, got int"),
    ("broken.yaml", "corpus: [unclosed\n", "not valid YAML"),
    # a section this command does not read is checked too: the typo is not left for `trainer fit` to find
    ("other_section.yaml", "fit:\n  epoks: 3\n", "unknown parameter fit.epoks"),
]


@pytest.fixture(autouse=True)
def scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder: no ``./params.yaml`` is found, nothing is written into the project."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(app, *args: str) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args])


def procedural_corpus(out: Path, *params: str) -> Result:
    """``builder corpus procedural`` of one piece: under a second of work."""
    return run(builder_app, "corpus", "procedural", "--pieces", "1", "--out", out, *params)


def assert_one_line_error(result: Result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]


def test_a_missing_params_file_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    result = procedural_corpus(tmp_path / "corpus.h5", "--params", "nope.yaml")

    assert_one_line_error(result, "nope.yaml", "no such params file")
    assert not (tmp_path / "corpus.h5").exists()


def test_a_folder_given_as_params_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "params.d").mkdir()

    assert_one_line_error(procedural_corpus(tmp_path / "corpus.h5", "--params", "params.d"), "params.d", "folder")


@pytest.mark.parametrize("name, content, words", BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_bad_params_file_is_one_line_naming_it(tmp_path: Path, name: str, content: str, words: str) -> None:
    (tmp_path / name).write_text(content)

    result = procedural_corpus(tmp_path / "corpus.h5", "--params", name)

    assert_one_line_error(result, f"{name}: ", words)
    assert not (tmp_path / "corpus.h5").exists()


def test_a_missing_section_warns_once_and_the_defaults_apply(tmp_path: Path) -> None:
    (tmp_path / "bank_only.yaml").write_text("bank:\n  layers: 3\n")

    with_file = procedural_corpus(tmp_path / "with_file.h5", "--params", "bank_only.yaml")
    without_file = procedural_corpus(tmp_path / "defaults.h5")

    assert with_file.exit_code == 0, with_file.output
    warnings = [line for line in with_file.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: bank_only.yaml: no 'corpus' section; the built-in defaults apply"]
    assert without_file.exit_code == 0 and "warning" not in without_file.stderr
    # same corpus, byte for byte, as the built-in defaults give (corpora hold no timestamps)
    assert (tmp_path / "with_file.h5").read_bytes() == (tmp_path / "defaults.h5").read_bytes()


def test_a_given_section_is_used(tmp_path: Path) -> None:
    (tmp_path / "short.yaml").write_text("corpus:\n  procedural:\n    seconds: 3\n")

    result = procedural_corpus(tmp_path / "short.h5", "--params", "short.yaml")

    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr and "3 s of music" in result.stderr


def test_every_section_of_the_defaults_is_a_known_section(tmp_path: Path) -> None:
    """A file holding every section, each empty, is accepted (an empty section means its defaults)."""
    (tmp_path / "all.yaml").write_text("".join(f"{section}:\n" for section in SECTIONS))

    result = procedural_corpus(tmp_path / "corpus.h5", "--params", "all.yaml")

    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such params file"),
        ("decode:\n  onset_treshold: 0.4\n", "unknown parameter decode.onset_treshold"),
        ("evaluation:\n  pieces: 2\n", "unknown section 'evaluation'"),
    ],
)
def test_trainer_infer_refuses_a_bad_params_file_before_loading_a_model(
    tmp_path: Path, content: str | None, words: str
) -> None:
    from trainer.cli import app as trainer_app

    if content is not None:
        (tmp_path / "params_file.yaml").write_text(content)

    result = run(trainer_app, "infer", "song.wav", "--model", "missing.keras", "--params", "params_file.yaml")

    assert_one_line_error(result, "params_file.yaml: ", words)


@pytest.mark.slow
def test_trainer_evaluate_warns_about_a_missing_section(tmp_path: Path) -> None:
    from trainer.cli import app as trainer_app

    (tmp_path / "fit_only.yaml").write_text("fit:\n  epochs: 1\n")

    result = run(trainer_app, "evaluate", "--model", "missing.keras", "--params", "fit_only.yaml")

    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1
    assert lines[0] == "warning: fit_only.yaml: no 'evaluate' section; the built-in defaults apply"
    assert len(lines) == 2 and lines[1].startswith("error: missing.keras: ")
