"""pianoscribe build stage: sample banks, note corpora and the synthesized dataset."""

__version__ = "0.1.0"
