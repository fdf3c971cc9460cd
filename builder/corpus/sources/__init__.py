"""One module per kind of music source, each reducing its input to ``NOTE_DTYPE`` notes (``builder.corpus.notes``):
MIDI files, the reference's midi-json, and the built-ins ``chorales`` (music21) and ``procedural`` (generated)."""
