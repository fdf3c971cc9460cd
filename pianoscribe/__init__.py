"""What both stages share: audio and keyboard constants, the defaults of every parameter, errors, atomic writes.

The layers, each importing only the ones below it: ``pianoscribe`` (this package) <- ``builder`` <- ``trainer``.
"""

__version__ = "0.1.0"
