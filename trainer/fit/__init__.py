"""``trainer fit``: the training loop (``loop``), the objective (``losses``), the test split's scores after every
epoch (``scores``), resuming a killed fit (``checkpoint``) and the metric files (``metrics``)."""

from trainer.fit.loop import FitReport, SilentReport, fit

__all__ = ["FitReport", "SilentReport", "fit"]
