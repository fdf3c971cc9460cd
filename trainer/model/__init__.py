"""The network: custom layers (``layers``), the architectures by name (``architectures``), and the model file
that carries the weights, the featurization and ``ModelInfo`` (``model_file``). Importable from here."""

from trainer.model.architectures import ARCHITECTURES, build_model, context_of, macs_per_frame, new_model
from trainer.model.layers import FrameContextPadding, HarmonicSampler, ModelInfoLayer, SpectralEnvelopeAugment
from trainer.model.model_file import (
    HEADS,
    ModelInfo,
    check_featurization,
    load_model,
    model_info,
    save_model,
    set_model_info,
)

__all__ = [
    "ARCHITECTURES",
    "HEADS",
    "FrameContextPadding",
    "HarmonicSampler",
    "ModelInfo",
    "ModelInfoLayer",
    "SpectralEnvelopeAugment",
    "build_model",
    "check_featurization",
    "context_of",
    "load_model",
    "macs_per_frame",
    "model_info",
    "new_model",
    "save_model",
    "set_model_info",
]
