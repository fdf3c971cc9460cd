"""pianoscribe train stage: fit the CNN on the synthesized store, transcribe recordings, evaluate."""

__version__ = "0.1.0"
