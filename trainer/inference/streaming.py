"""One 1024-sample buffer in, 88 frame probabilities out (``StreamingTranscriber``): the live entry point."""

from __future__ import annotations

import collections

import numpy as np

from pianoscribe.constants import BUFFER_SIZE
from trainer.inference.frame_model import FrameModel


class StreamingTranscriber:
    """One 1024-sample buffer in, 88 frame probabilities out, ``lookahead_frames`` buffers late.

    Keeps a ring of the last ``context_frames`` FFT slices and runs the model on just that ring, so the
    probabilities equal the offline ones (``FrameModel.heads``) frame for frame. The latest values of all
    three heads are in ``last_heads`` after each call.
    """

    def __init__(self, frame_model: FrameModel) -> None:
        self.frame_model = frame_model
        self.context_frames = int(frame_model.info.context_frames)
        self.lookahead_frames = int(frame_model.info.lookahead_frames)
        self._ring: collections.deque[np.ndarray] = collections.deque(maxlen=self.context_frames)
        self._featurizer = frame_model.info.featurizer(workers=1)
        self._pushed = 0
        self._emitted = 0
        self.last_heads: dict[str, np.ndarray] | None = None

    def push(self, buffer: np.ndarray) -> np.ndarray | None:
        """Frame probabilities ``[88]`` of frame ``pushed - 1 - lookahead``, or None while the first buffers fill."""
        buffer = np.asarray(buffer, np.float32).reshape(-1)
        if buffer.shape[0] != BUFFER_SIZE:
            raise ValueError(f"buffer: expected {BUFFER_SIZE} samples, got {buffer.shape[0]}")
        self._ring.append(self._featurizer.rows(buffer[None, :])[0])
        self._pushed += 1
        if self._pushed <= self.lookahead_frames:
            return None
        return self._emit()

    def flush(self) -> list[np.ndarray]:
        """The last ``lookahead_frames`` frames, computed with nothing after the end (as offline does)."""
        remaining = []
        while self._emitted < self._pushed:
            remaining.append(self._emit())
        return remaining

    def _emit(self) -> np.ndarray:
        # the ring holds frames [pushed - len(ring), pushed); frame `emitted` needs `past` frames before it
        # (all in the ring, or before the start where the model zero-pads as offline) and `lookahead` after
        # it (in the ring, or after the end of the stream when flushing, zero-padded as offline)
        ring_row = self._emitted - (self._pushed - len(self._ring))
        result = self.frame_model.predict(np.stack(self._ring)[None])
        self.last_heads = {name: value[0, ring_row] for name, value in result.items()}
        self._emitted += 1
        return self.last_heads["active"]
