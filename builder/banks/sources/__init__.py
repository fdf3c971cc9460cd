"""One module per kind of bank source, each with the same shape: a function that returns the recordings as a
``RecordingGrid`` ({(key, layer): processed audio}) and the ``extra`` attrs that say how they were made.

``builder.banks.build`` turns that into a ``Bank`` (one loudness gain, packed); ``builder.banks.registry``
names the built-in ones.
"""

from __future__ import annotations
