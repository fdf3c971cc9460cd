"""A loaded network (``trainer.inference.networks``: ONNX or Keras) run over a song of any length (``FrameModel``),
in overlapping blocks.

The FFT slices go through the network in blocks that overlap by the model's context (``context_frames - 1 -
lookahead_frames`` past frames, ``lookahead_frames`` future ones), so every frame sees exactly the neighbours it
would see if the whole song were one sequence, while memory stays bounded by the block size. Blocks are
stacked into batches. ``SequenceRunner`` feeds slices as they arrive.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pianoscribe.constants import N_BINS, N_KEYS
from trainer.inference.networks import Network, open_network

BLOCK_FRAMES = 512  # frames per model block (~12 s of audio), at least
OVERLAP_SHARE = 8  # blocks at least this many times their overlap: a wide-context model wastes <= 1/8 on it
BATCH_BLOCKS = 2  # blocks per model call: ~100 MB of activations, as fast as bigger batches


class FrameModel:
    """A loaded network plus the bookkeeping to run it over sequences of any length in overlapping blocks."""

    def __init__(self, network: Network, block_frames: int | None = None, batch_blocks: int = BATCH_BLOCKS) -> None:
        self.network = network
        self.info = network.info
        self.past_frames = int(self.info.context_frames) - 1 - int(self.info.lookahead_frames)
        self.future_frames = int(self.info.lookahead_frames)
        overlap = int(self.info.context_frames) - 1
        self.block_frames = int(block_frames) if block_frames else max(BLOCK_FRAMES, OVERLAP_SHARE * overlap)
        self.batch_blocks = int(batch_blocks)
        self.input_bins = N_BINS + int(self.info.long_fft_bins)  # 512 FFT bins, then the long window's if it reads them
        self.predict(np.zeros((1, int(self.info.context_frames), self.input_bins), np.float32))  # warm up first

    def predict(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        """One model call on a batch ``[batch, time, input bins]`` -> heads ``[batch, time, 88]`` (no blocking)."""
        return self.network.predict(fft_magnitude)

    @classmethod
    def load(
        cls,
        path: Path | str,
        backend: str = "auto",
        warn: Callable[[str], None] = lambda text: None,
        threads: int = 0,
        **kwargs,
    ) -> FrameModel:
        """``path`` (``.keras`` or ``.onnx``) with ``backend`` and ``threads`` (see ``networks.open_network``)."""
        return cls(open_network(path, backend, warn, threads), **kwargs)

    def heads(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        """Heads for a whole sequence ``[time, input bins]`` -> ``{active, onset, energy}`` each ``[time, 88]``."""
        runner = self.sequence_runner()
        return concatenate_heads([runner.feed(fft_magnitude), runner.finish()])

    def sequence_runner(self) -> SequenceRunner:
        return SequenceRunner(self)

    def run_spans(self, fft_magnitude: np.ndarray, spans: list[tuple[int, int, int, int]]) -> dict[str, np.ndarray]:
        """Run model blocks; ``spans`` = (input start, input end, output start, output end) into ``fft_magnitude``.

        Blocks of equal input length share one batch; outputs come back concatenated in span order.
        """
        outputs: list[dict[str, np.ndarray] | None] = [None] * len(spans)
        by_length: dict[int, list[int]] = collections.defaultdict(list)
        for index, (start, end, _, _) in enumerate(spans):
            by_length[end - start].append(index)
        for indices in by_length.values():
            for first in range(0, len(indices), self.batch_blocks):
                group = indices[first : first + self.batch_blocks]
                batch = np.stack([fft_magnitude[spans[i][0] : spans[i][1]] for i in group]).astype(np.float32)
                result = self.predict(batch)
                for row, i in enumerate(group):
                    start, _, out_start, out_end = spans[i]
                    outputs[i] = {
                        name: value[row, out_start - start : out_end - start] for name, value in result.items()
                    }
        finished = [output for output in outputs if output is not None]
        return {name: np.concatenate([output[name] for output in finished]) for name in ("active", "onset", "energy")}


class SequenceRunner:
    """Feed FFT slices as they arrive; get heads back for every frame whose future context is complete.

    Keeps only the past context it still needs, so a long recording runs in bounded memory.
    """

    def __init__(self, frame_model: FrameModel) -> None:
        self.frame_model = frame_model
        self._pending = np.zeros((0, frame_model.input_bins), dtype=np.float32)
        self._pending_start = 0  # global frame index of _pending[0]
        self._next_output = 0  # global frame index of the next frame to produce
        self._end = 0  # frames fed so far

    def feed(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        self._pending = np.concatenate([self._pending, np.asarray(fft_magnitude, np.float32)])
        self._end += len(fft_magnitude)
        chunk = self.frame_model.block_frames * self.frame_model.batch_blocks
        produced = []
        while self._end - self._next_output >= chunk + self.frame_model.future_frames:
            produced.append(self._produce(self._next_output + chunk))
        return concatenate_heads(produced)

    def finish(self) -> dict[str, np.ndarray]:
        return concatenate_heads([self._produce(self._end)] if self._end > self._next_output else [])

    def _produce(self, output_end: int) -> dict[str, np.ndarray]:
        model = self.frame_model
        spans = []
        for block_start in range(self._next_output, output_end, model.block_frames):
            block_end = min(block_start + model.block_frames, output_end)
            input_start = max(0, block_start - model.past_frames)
            input_end = min(self._end, block_end + model.future_frames)
            spans.append(
                (
                    input_start - self._pending_start,
                    input_end - self._pending_start,
                    block_start - self._pending_start,
                    block_end - self._pending_start,
                )
            )
        heads = model.run_spans(self._pending, spans)
        self._next_output = output_end
        keep_from = max(0, output_end - model.past_frames)
        self._pending = self._pending[keep_from - self._pending_start :]
        self._pending_start = keep_from
        return heads


def concatenate_heads(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {name: np.zeros((0, N_KEYS), np.float32) for name in ("active", "onset", "energy")}
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
