"""The two ways to run a model file over a batch of FFT slices: onnxruntime on the ``.onnx`` twin (no TensorFlow
in the process: inference starts in a fraction of a second) or Keras on the ``.keras`` file.

``open_network(path, backend)`` picks one; ``auto`` (the default of ``trainer infer`` and ``trainer evaluate``)
takes the ONNX twin of a ``.keras`` file when it was exported from those very bytes, else Keras. Both give the
heads ``{active, onset, energy}`` as ``[batch, time, 88]`` float32 arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pianoscribe.constants import N_BINS
from pianoscribe.errors import UserError
from trainer.model.info import HEADS, ModelInfo
from trainer.model.onnx_file import file_sha256, load_onnx, onnx_twin

BACKENDS = ("auto", "onnx", "keras")


class Network(Protocol):
    """A model file, loaded: its ``ModelInfo``, where it came from, and one call on a batch."""

    info: ModelInfo
    path: Path
    backend: str

    def predict(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]: ...


class OnnxNetwork:
    """An ONNX model written by ``trainer fit`` / ``trainer export``, run by onnxruntime."""

    backend = "onnx"

    def __init__(self, session: Any, info: ModelInfo, path: Path) -> None:
        self.session = session
        self.info = info
        self.path = path
        self._outputs = [value.name for value in session.get_outputs() if value.name in HEADS]
        self._input = session.get_inputs()[0].name

    @classmethod
    def load(cls, path: Path | str, threads: int = 0) -> OnnxNetwork:
        session, info, _ = load_onnx(path, threads)
        return cls(session, info, Path(path))

    def predict(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self._outputs, {self._input: np.ascontiguousarray(fft_magnitude, np.float32)})
        return dict(zip(self._outputs, values))


class KerasNetwork:
    """A Keras model (loaded from a ``.keras`` file, or built in memory) run by TensorFlow."""

    backend = "keras"

    def __init__(self, model: Any, info: ModelInfo, path: Path | None = None) -> None:
        import tensorflow as tf

        self.model = model
        self.info = info
        self.path = Path(path) if path is not None else Path(f"<{model.name}>")
        # one graph for every (batch, time) shape: no retracing per song length
        self._compiled = tf.function(
            lambda fft_magnitude: model(fft_magnitude, training=False),
            input_signature=[tf.TensorSpec([None, None, N_BINS + int(info.long_fft_bins)], tf.float32)],
            reduce_retracing=True,
        )

    @classmethod
    def load(cls, path: Path | str) -> KerasNetwork:
        from trainer.model.model_file import load_model

        model, info = load_model(path)
        return cls(model, info, Path(path))

    def predict(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._compiled(np.asarray(fft_magnitude, np.float32))
        return {name: outputs[name].numpy() for name in HEADS}


def open_network(
    path: Path | str, backend: str = "auto", warn: Callable[[str], None] = lambda text: None, threads: int = 0
) -> Network:
    """Load ``path`` (a ``.keras`` or ``.onnx`` file) with ``backend`` (``auto``, ``onnx`` or ``keras``).

    ``auto``: an ``.onnx`` path runs on onnxruntime; a ``.keras`` path runs its ONNX twin (``NAME.onnx`` beside
    it) when that was exported from this ``.keras`` (its recorded sha256 matches), otherwise Keras, and ``warn``
    says why when a twin exists but is stale. A missing ``.keras`` whose twin exists runs the twin.
    ``onnx`` with a ``.keras`` path requires a current twin; ``keras`` requires a ``.keras`` path. ``threads``:
    onnxruntime's threads per call (0: one per core); TensorFlow keeps its own pools.
    """
    path = Path(path)
    if backend not in BACKENDS:
        raise UserError(f"--backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    if path.suffix not in (".keras", ".onnx"):
        raise UserError(f"{path}: a model file ends in .keras or .onnx")
    if path.suffix == ".onnx":
        if backend == "keras":
            raise UserError(f"{path}: --backend keras needs the .keras model file")
        return OnnxNetwork.load(path, threads)
    if backend == "keras":
        return KerasNetwork.load(path)
    twin = onnx_twin(path)
    if not twin.is_file():
        if backend == "onnx":
            raise UserError(f"{twin}: no such file; write it with `trainer export --model {path}`")
        if not path.exists():
            raise UserError(f"{path}: no such model file (run `trainer fit` first)")
        return KerasNetwork.load(path)
    session, info, source_sha256 = load_onnx(twin, threads)
    if not path.exists() or source_sha256 == file_sha256(path):
        return OnnxNetwork(session, info, twin)
    reason = f"{twin}: not exported from {path} (changed since); `trainer export --model {path}` renews it"
    if backend == "onnx":
        raise UserError(reason)
    warn(f"{reason}; running the .keras with TensorFlow")
    return KerasNetwork.load(path)
