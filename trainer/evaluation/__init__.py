"""Measuring a model: the held-out pieces rendered (``pieces``), mir_eval scores (``scoring``), ``trainer
evaluate`` end to end (``evaluate``) and the headline numbers after ``make run`` (``report``)."""
