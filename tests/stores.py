"""Writing a store in a test the way ``builder synth`` does: names resolved to files, then the library call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builder import banks, corpus
from builder.dataset import synth


def synthesize_store(settings: dict[str, Any], out: Any, data_dir: Path, **options: Any) -> synth.SynthSummary:
    """``settings`` name banks and corpora as bare names (files under ``data_dir``) or .h5 paths, which must exist;
    ``out`` a folder or a ``StoreLocation``; ``options`` go to ``synthesize`` (``progress``, ``say``)."""
    bank_paths = {name: banks.bank_path(name, data_dir) for name in synth.bank_names(settings)}
    corpus_paths = {name: corpus.corpus_path(name, data_dir) for name in settings["corpora"]}
    return synth.synthesize(settings, out, bank_paths, corpus_paths, cache_dir=Path(data_dir) / "cache", **options)
