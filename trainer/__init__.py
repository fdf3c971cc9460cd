"""pianoscribe train stage: fit the CNN on the synthesized store, transcribe recordings, evaluate."""

import os

# TensorFlow's oneDNN kernels: on. On an AVX-512 machine they train the streaming model 2.2x and the offline pass
# 1.7-2.7x faster than TF's Eigen kernels; on an AVX2 machine the streaming fit was as fast either way
# (docs/training.md, "Training speed"). They are chosen per CPU and round differently on each, but so do the Eigen
# kernels: a model repeats to the byte on one machine, not across CPU kinds, either way. Set before TensorFlow is
# imported; a caller that set it keeps its choice.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
