"""The audio grid and the keyboard, defined once: every module of both stages takes them from here.

The native engine has its own copies (C++ constants); :func:`check_engine` asserts they agree when the engine
is loaded (``builder.engine``), so a mismatch is an error at start-up, not silently wrong data.
"""

from __future__ import annotations

from typing import Any

SAMPLE_RATE = 44100  # Hz: banks, rendered audio, the dataset and inference
BUFFER_SIZE = 1024  # samples per buffer = per FFT slice; hop = buffer (frames do not overlap)
N_BINS = BUFFER_SIZE // 2  # FFT magnitude bins kept (0..511, Nyquist dropped)
HOP_SECONDS = BUFFER_SIZE / SAMPLE_RATE
LOWEST_KEY = 21  # A0, MIDI number of key index 0
HIGHEST_KEY = 108  # C8
N_KEYS = HIGHEST_KEY - LOWEST_KEY + 1
WINDOWS = ("hann", "none")  # FFT analysis windows: periodic Hann, or rectangular (the reference's)
# The long window (`fft_long_magnitude`, for the bass): 4096 samples of buffers i-3 .. i (causal: frame i has it
# when its own buffer arrives, so streaming latency does not grow), Hann, bins of 10.8 Hz from 0 Hz.
LONG_WINDOW = 4096
LONG_BEFORE = 3  # whole buffers before frame i's buffer ...
LONG_AFTER = 0  # ... and after it
LONG_BIN_HZ = SAMPLE_RATE / LONG_WINDOW

# The music21 corpus folders the project may use (the `scores` corpus reads them; evaluation groups them into
# kinds of music), in the order the corpus reads them. Every other folder (joplin, chopin, mozart, the
# non-chorale bach, ...) is reserved: never read, for training, tuning or testing.
SCORE_COLLECTIONS = (  # polyphonic music, played with every part on the piano
    "palestrina",
    "monteverdi",
    "beethoven",
    "josquin",
    "trecento",
    "corelli",
    "handel",
    "luca",
    "ciconia",
    "lusitano",
    "johnson_j_r",
    "liliuokalani",
    "webern",
)
FOLK_COLLECTIONS = ("ryansMammoth", "oneills1850", "essenFolksong", "airdsAirs")  # melodies


def check_engine(engine_module: Any) -> None:
    """Raise ``RuntimeError`` if the native engine was built with another buffer size or bin count."""
    exported = {
        "BUFFER_SIZE": BUFFER_SIZE,
        "BINS": N_BINS,
        "LONG_WINDOW": LONG_WINDOW,
        "LONG_BEFORE": LONG_BEFORE,
        "LONG_AFTER": LONG_AFTER,
    }
    wrong = {
        name: getattr(engine_module, name, None)
        for name, value in exported.items()
        if getattr(engine_module, name, None) != value
    }
    if wrong:
        raise RuntimeError(
            f"pianoscribe_native: built with {wrong}, this code needs {exported}; rebuild it with `make setup`"
        )
