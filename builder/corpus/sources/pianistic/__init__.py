"""The built-in ``pianistic`` corpus: generated piano music written the way piano pieces are written.

``procedural`` covers the keyboard with abstract textures; the music users bring (rags, sonatas, nocturnes)
has harmony, two hands and a pedal. A piece here is a chain of sections of a few bars, each with its own key
and mode, meter, tempo (40..200 bpm), register and dynamics:

- harmony: a progression (I-IV-V-I, ii-V-I, the circle of fifths, secondary dominants, modal mixture, the
  Neapolitan, ...) in the section's key and mode, at a random harmonic rhythm, ending on its cadence;
- texture: a left-hand accompaniment (Alberti bass, stride, broken chords, a bass line doubled in octaves or
  tenths, sustained bass) under a right-hand part (a melody, sometimes doubled in octaves, thirds or sixths;
  repeated notes; a melody ornamented with trills, turns and mordents; fast diatonic or chromatic runs;
  parallel octaves), or one texture for both hands (block chords of 6..10 keys, arpeggios over 3..5 octaves);
- performance: the sustain pedal (note-offs held until the pedal is lifted at the next change of harmony),
  rubato (a tempo swell over each phrase, a ritardando into the cadence), dynamics (a hairpin over the section,
  an arch over each phrase, accents on downbeats, the melody above the accompaniment) and velocity jitter.

Textures are written in the section's beats (one small function each: ``left_hand``, ``right_hand``,
``both_hands``, named in ``textures.TEXTURES``); they find chord and scale tones through ``harmony.Ladder``
tables, one row per chord (``harmony``), with the building blocks of ``section``; ``pieces`` chains sections.
Keys off the keyboard are folded by octaves, then notes are cleaned and made playable on one piano
(``builder.corpus.notes.clean_notes``, ``merge_unisons``). Piece ``index`` draws from
``numpy.random.default_rng([seed, index])``, so a piece does not depend on how many pieces are made, and the
same settings give the same notes.
"""

from builder.corpus.sources.pianistic.pieces import GENERATOR_VERSION, pianistic_pieces

__all__ = ["GENERATOR_VERSION", "pianistic_pieces"]
