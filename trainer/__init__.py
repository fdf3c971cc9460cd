"""pianoscribe train stage: fit the CNN on the synthesized store, transcribe recordings, evaluate."""

import os

# TensorFlow's oneDNN kernels pick their code per CPU (AVX2, AVX-512, AMX) and round differently on each, so a
# model trained on one machine would not be the bytes of the same run on another; without them TF uses its
# Eigen kernels, which on this project's 2-core machines are also as fast or faster (docs/training.md, "Speed").
# Must be set before TensorFlow is imported; a caller that set it keeps its choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
