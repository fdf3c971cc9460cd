"""``builder``: sample banks, note corpora, the synthesized dataset. Parses, reads params, calls, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from builder.cli_support import Debug, ParamsFile, console, make_app, run_reporting_errors
from builder.params import DEFAULT_PARAMS, apply_overrides, load_params, section

app = make_app("Build sample banks, note corpora and the sharded Zarr dataset of FFT slices.")


@app.command()
def bank(
    source: Annotated[Optional[str], typer.Argument(help="A built-in name (see --list), an Ivy Audio folder, "
                                                    "a folder or zip of note-named recordings, or a .sf2 file.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Bank name (default: the built-in name or the source's stem).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output file (default: data/banks/NAME.h5).")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Velocity layers to render or derive (params: bank.layers).")] = None,
    list_builtins: Annotated[bool, typer.Option("--list", help="List the built-in banks and exit.")] = False,
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Build a sample bank: 88 keys x layers of single-note recordings in one HDF5 file."""
    from builder import banks

    def body() -> None:
        if list_builtins:
            for builtin_name, description in banks.BUILTIN_BANKS.items():
                console.print(f"[bold]{builtin_name:10s}[/bold] {description}")
            return
        if source is None:
            raise typer.BadParameter("give a SOURCE or --list")
        settings = apply_overrides(section(load_params(params_file), "bank", banks.DEFAULT_SETTINGS),
                                   {"layers": layers})
        bank_name = name or banks.default_name(source)
        out_path = out or Path("data/banks") / f"{bank_name}.h5"
        built = banks.build_bank(source, name=bank_name, settings=settings, cache_dir=Path("data/cache"))
        banks.write_bank(built, out_path)
        console.print(f"wrote {out_path}: {banks.describe_bank(built)}")

    run_reporting_errors(body, debug)


@app.command()
def corpus(
    sources: Annotated[Optional[list[str]], typer.Argument(help="MIDI files or folders, midi-json files, "
                                                          "or the built-ins 'chorales' and 'procedural'.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Corpus name (default: the first source's name).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Output file (default: data/corpus/NAME.h5).")] = None,
    to_midi_json: Annotated[Optional[Path], typer.Option("--to-midi-json",
                            help="Also write each piece as reference midi-json into this folder.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="A corrupt MIDI file is fatal instead of skipped.")] = False,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the procedural generator.")] = None,
    pieces: Annotated[Optional[int], typer.Option(help="Pieces the procedural generator makes.")] = None,
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Build a note corpus: pieces of (onset, offset, key, velocity) notes in one file."""
    from builder import corpus as corpus_module

    def body() -> None:
        if not sources:
            raise typer.BadParameter("give at least one SOURCE")
        settings = section(load_params(params_file), "corpus", corpus_module.DEFAULT_SETTINGS)
        settings["procedural"] = apply_overrides(settings["procedural"], {"seed": seed, "pieces": pieces})
        corpus_name = name or corpus_module.default_name(sources[0])
        out_path = out or Path("data/corpus") / f"{corpus_name}.h5"
        built = corpus_module.build_corpus(sources, name=corpus_name, settings=settings, strict=strict,
                                           warn=lambda message: console.print(f"[yellow]warning:[/yellow] {message}"))
        corpus_module.write_corpus(built, out_path)
        console.print(f"wrote {out_path}: {corpus_module.describe_corpus(built)}")
        if to_midi_json is not None:
            written = corpus_module.write_midi_json_folder(built, to_midi_json)
            console.print(f"wrote {written} midi-json files into {to_midi_json}")

    run_reporting_errors(body, debug)


@app.command()
def synth(
    n: Annotated[Optional[int], typer.Option("--n", help="FFT slices in total, train + test (params: synth.n).")] = None,
    out: Annotated[Path, typer.Option(help="The Zarr store to write.")] = Path("data/dataset.zarr"),
    seed: Annotated[Optional[int], typer.Option(help="Seed of positions, split and augmentation.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="Engine threads (0 = all cores).")] = None,
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Synthesize the sharded Zarr dataset of FFT slices and 88-key targets, with a fixed split by piece."""
    from builder import synth as synth_module

    def body() -> None:
        all_params = load_params(params_file)
        settings = apply_overrides(section(all_params, "synth", synth_module.DEFAULT_SETTINGS),
                                   {"n": n, "seed": seed, "threads": threads})
        bank_settings = section(all_params, "bank", _bank_defaults())
        corpus_settings = section(all_params, "corpus", _corpus_defaults())
        synth_module.synthesize(settings, out, bank_settings=bank_settings, corpus_settings=corpus_settings,
                                data_dir=Path("data"), console=console)

    run_reporting_errors(body, debug)


@app.command()
def render(
    song: Annotated[Path, typer.Argument(help="A MIDI file (or midi-json) to render.")],
    bank_name: Annotated[str, typer.Option("--bank", help="Bank name (data/banks/NAME.h5, built if missing) or .h5 path.")] = "steinway",
    output: Annotated[Path, typer.Option("-o", "--output", help="The WAV file to write.")] = Path("song.wav"),
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Render a whole piece through a bank with the synthesizer engine, to a WAV file."""
    from builder import render as render_module

    def body() -> None:
        all_params = load_params(params_file)
        settings = section(all_params, "synth", _synth_defaults())
        bank_settings = section(all_params, "bank", _bank_defaults())
        seconds = render_module.render_file(song, bank_name, output, settings=settings,
                                            bank_settings=bank_settings, data_dir=Path("data"), console=console)
        console.print(f"wrote {output}: {seconds:.1f} s of audio")

    run_reporting_errors(body, debug)


@app.command()
def inspect(
    store: Annotated[Path, typer.Argument(help="A dataset written by `builder synth`.")] = Path("data/dataset.zarr"),
    debug: Debug = False,
) -> None:
    """Describe a dataset: shapes, split, banks, per-key counts and label statistics."""
    from builder import store as store_module

    run_reporting_errors(lambda: store_module.print_description(store, console), debug)


def _bank_defaults() -> dict:
    from builder.banks import DEFAULT_SETTINGS

    return DEFAULT_SETTINGS


def _corpus_defaults() -> dict:
    from builder.corpus import DEFAULT_SETTINGS

    return DEFAULT_SETTINGS


def _synth_defaults() -> dict:
    from builder.synth import DEFAULT_SETTINGS

    return DEFAULT_SETTINGS


if __name__ == "__main__":
    app()
