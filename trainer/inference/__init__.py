"""From audio to notes: reading recordings (``audio``), running a model over a song (``frame_model``), decoding
notes (``decode``), the whole path (``transcribe``), the live path (``streaming``), writing the outputs
(``outputs``), and ``trainer infer`` over many files (``infer``)."""
