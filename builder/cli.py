"""``builder``: sample banks, note corpora, the synthesized dataset. Parses, reads params, calls, prints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pianoscribe.atomic import check_replaceable
from pianoscribe.cli import Debug, ParamsFile, StorageOptions, console, make_app, run_reporting_errors, store_location
from pianoscribe.params import apply_overrides, load_params

app = make_app("Build sample banks, note corpora and the sharded Zarr dataset of FFT slices.")
DATA_DIR = Path("data")
GENERATORS = ("procedural", "pianistic")  # built-in corpora whose size and seed --pieces and --seed set


def _warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


@app.command()
def bank(
    source: Annotated[
        str | None,
        typer.Argument(
            help="A built-in name (see --list), an Ivy Audio folder, "
            "a folder or zip of note-named recordings, or a .sf2 file."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Bank name (default: the built-in name or the source's stem).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output file (default: data/banks/NAME.h5).")] = None,
    layers: Annotated[
        int | None, typer.Option(help="Velocity layers to render or derive (params: bank.layers).")
    ] = None,
    list_builtins: Annotated[bool, typer.Option("--list", help="List the built-in banks and exit.")] = False,
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Build a sample bank: 88 keys x layers of single-note recordings in one HDF5 file."""
    from builder import banks

    def body() -> None:
        if list_builtins:
            for builtin_name, builtin in banks.BUILTIN_BANKS.items():
                console.print(f"[bold]{builtin_name:10s}[/bold] {builtin.description}")
            return
        if source is None:
            raise typer.BadParameter("give a SOURCE or --list")
        settings = apply_overrides(load_params(params_file).section("bank", _warn), {"layers": layers})
        bank_name = name or banks.default_name(source)
        out_path = out or DATA_DIR / "banks" / f"{bank_name}.h5"
        check_replaceable(out_path, banks.is_bank_file, "a bank file")  # before minutes of work, not after
        built = banks.build_bank(source, name=bank_name, settings=settings, cache_dir=DATA_DIR / "cache")
        banks.write_bank(built, out_path)
        console.print(f"wrote {out_path}: {banks.describe_bank(built)}", soft_wrap=True)

    run_reporting_errors(body, debug)


@app.command()
def corpus(
    sources: Annotated[
        list[str] | None,
        typer.Argument(help="MIDI files or folders, midi-json files, or the built-ins 'chorales' and 'procedural'."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Corpus name (default: the first source's name).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output file (default: data/corpus/NAME.h5).")] = None,
    to_midi_json: Annotated[
        Path | None,
        typer.Option("--to-midi-json", help="Also write each piece as reference midi-json into this folder."),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="A corrupt MIDI file is fatal instead of skipped.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the generators (procedural, pianistic).")] = None,
    pieces: Annotated[int | None, typer.Option(help="Pieces the generators make (procedural, pianistic).")] = None,
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Build a note corpus: pieces of (onset, offset, key, velocity) notes in one file."""
    from builder import corpus as corpus_module

    def body() -> None:
        if not sources:
            raise typer.BadParameter("give at least one SOURCE")
        settings = load_params(params_file).section("corpus", _warn)
        for generator in GENERATORS:
            settings[generator] = apply_overrides(settings[generator], {"seed": seed, "pieces": pieces})
        corpus_name = name or corpus_module.default_name(sources[0])
        out_path = out or DATA_DIR / "corpus" / f"{corpus_name}.h5"
        check_replaceable(out_path, corpus_module.is_corpus_file, "a corpus file")
        built = corpus_module.build_corpus(sources, name=corpus_name, settings=settings, strict=strict, warn=_warn)
        corpus_module.write_corpus(built, out_path)
        console.print(f"wrote {out_path}: {corpus_module.describe_corpus(built)}", soft_wrap=True)
        if to_midi_json is not None:
            written = corpus_module.write_midi_json_folder(built, to_midi_json)
            console.print(f"wrote {written} midi-json files into {to_midi_json}")

    run_reporting_errors(body, debug)


@app.command()
def synth(
    n: Annotated[int | None, typer.Option("--n", help="FFT slices in total, train + test (params: synth.n).")] = None,
    out: Annotated[
        str, typer.Option(help="The Zarr store to write: a folder, or a URL (s3://bucket/key.zarr, gs://, memory://).")
    ] = "data/dataset.zarr",
    seed: Annotated[int | None, typer.Option(help="Seed of positions, split and augmentation.")] = None,
    threads: Annotated[int | None, typer.Option(help="Engine threads (0 = all cores).")] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Render the shards as tasks of a Dask cluster: local:N (N worker processes here) or a scheduler "
            "address (params: synth.dask.address). The same bytes as without.",
        ),
    ] = None,
    storage_option: StorageOptions = None,
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Synthesize the sharded Zarr dataset of FFT slices and 88-key targets, with a fixed split by piece."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    from builder import banks
    from builder import corpus as corpus_module
    from builder.dataset import synth as synth_module

    def body() -> None:
        params = load_params(params_file)
        settings = apply_overrides(params.section("synth", _warn), {"n": n, "seed": seed, "threads": threads})
        settings["dask"] = apply_overrides(settings["dask"], {"address": dask})
        settings = synth_module.check_settings(settings)
        location = store_location(out, storage_option)
        bank_settings, corpus_settings = params.section("bank", _warn), params.section("corpus", _warn)
        # the inputs first: a missing built-in bank or corpus is built here, saying so
        corpus_paths = {
            name: corpus_module.ensure_corpus(name, DATA_DIR, corpus_settings, console) for name in settings["corpora"]
        }
        bank_paths = {
            name: banks.ensure_bank(name, DATA_DIR, bank_settings, console)
            for name in synth_module.bank_names(settings)
        }
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=console,
        )
        tasks: dict[str, TaskID] = {}

        def progress(side: str, done: int, total: int, rate: float) -> None:
            if side not in tasks:
                tasks[side] = bar.add_task(side, total=total, rate="")
            bar.update(tasks[side], completed=done, rate=f"{rate / 1e3:,.0f}k ex/s")

        with bar:
            summary = synth_module.synthesize(
                settings,
                location,
                bank_paths,
                corpus_paths,
                cache_dir=DATA_DIR / "cache",
                progress=progress,
                say=bar.console.print,
            )
        for line in synth_module.summary_lines(summary, location):
            console.print(line)

    run_reporting_errors(body, debug)


@app.command()
def render(
    song: Annotated[Path, typer.Argument(help="A MIDI file (or midi-json) to render.")],
    bank_name: Annotated[
        str, typer.Option("--bank", help="Bank name (data/banks/NAME.h5, built if missing) or .h5 path.")
    ] = "steinway",
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The WAV file to write (an existing folder: SONG.wav inside it).")
    ] = Path("song.wav"),
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Render a whole piece through a bank with the synthesizer engine, to a WAV file."""
    from builder import banks
    from builder.dataset import render as render_module

    def body() -> None:
        params = load_params(params_file)
        target = output / f"{song.stem}.wav" if output.is_dir() else output  # a folder: the WAV goes inside it
        bank_path = banks.ensure_bank(bank_name, DATA_DIR, params.section("bank", _warn), console)
        seconds = render_module.render_file(song, bank_path, target, settings=params.section("synth", _warn))
        console.print(f"wrote {target}: {seconds:.1f} s of audio")

    run_reporting_errors(body, debug)


StoreArgument = Annotated[
    str, typer.Argument(help="A dataset written by `builder synth`: a folder or a URL (s3://bucket/key.zarr ...).")
]


@app.command()
def inspect(
    store: StoreArgument = "data/dataset.zarr",
    storage_option: StorageOptions = None,
    debug: Debug = False,
) -> None:
    """Describe a dataset: shapes, split, banks, per-key counts and label statistics."""
    from builder.dataset.inspect import describe_store

    def body() -> None:
        for line in describe_store(store_location(store, storage_option)):
            console.print(line, soft_wrap=True)

    run_reporting_errors(body, debug)


@app.command()
def verify(
    store: StoreArgument = "data/dataset.zarr",
    storage_option: StorageOptions = None,
    debug: Debug = False,
) -> None:
    """Read every shard of a dataset and check it: decodes, values, counts, checksums. Exit 1 if anything is wrong."""
    from builder.dataset.verify import verify_store

    def body() -> int:
        with console.status(f"reading every shard of {store}"):
            result = verify_store(store_location(store, storage_option))
        for problem in result.problems:
            console.print(f"[red]problem:[/red] {problem}", soft_wrap=True)
        verdict = "no problems" if result.ok else f"{len(result.problems)} problems"
        console.print(f"{store}: {result.shards_read} shards ({result.rows_read:,} rows) read, {verdict}")
        return len(result.problems)

    if run_reporting_errors(body, debug):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
