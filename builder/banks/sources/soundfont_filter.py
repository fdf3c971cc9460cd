"""SoundFont presets whose low-pass filter is driven by modulators, which tinysoundfont does not implement.

SoundFont modulators route velocity and key to synthesis parameters. MuseScore General's Grand Piano opens its
low-pass filter with velocity (velocity -> modEnvToFilterFc, key -> initialFilterFc); tinysoundfont ignores
modulators, so it renders that piano through the bare ~300 Hz filter, and at velocities 75-107, where a static
modEnvToFilterFc of -2350 cents assumes the velocity modulator's +10000, through an ~80 Hz one: a muffled piano
whose top octaves are 40 dB down and whose velocity-75-107 notes sound at 80-130 Hz whatever their pitch. Such a
preset is rendered with its filter open (the recorded samples as they are) rather than with half its design.
Presets without filter modulators are rendered as authored. Generator and modulator numbers: SoundFont 2.04, 8.1.
"""

from __future__ import annotations

import struct

INITIAL_FILTER_FC = 8  # generator numbers (SoundFont 2.04, 8.1.2)
INITIAL_FILTER_Q = 9
MOD_LFO_TO_FILTER_FC = 10
MOD_ENV_TO_FILTER_FC = 11
INSTRUMENT = 41
FILTER_GENERATORS = (INITIAL_FILTER_FC, INITIAL_FILTER_Q, MOD_LFO_TO_FILTER_FC, MOD_ENV_TO_FILTER_FC)
FILTER_OPEN_CENTS = 13500  # an instrument's initialFilterFc at or above this turns the filter off (8.1.3)
RECORD_FORMATS = {  # the pdta sub-chunks read here, one record each
    "phdr": "<20sHHHIII",
    "pbag": "<HH",
    "pmod": "<HHhHH",
    "pgen": "<Hh",
    "inst": "<20sH",
    "ibag": "<HH",
    "imod": "<HHhHH",
    "igen": "<Hh",
}


def filter_is_modulated(soundfont: bytes, bank: int = 0, program: int = 0) -> bool:
    """Does the preset (``bank``, ``program``) or an instrument it plays route a modulator to its filter cutoff?

    False when the file has no such preset or no readable preset data (tinysoundfont then reports the problem).
    """
    records = _preset_records(soundfont)
    if records is None:
        return False
    presets = records["phdr"]
    for index, header in enumerate(presets[:-1]):
        if (header[2], header[1]) != (bank, program):
            continue
        bags = range(header[3], presets[index + 1][3])
        instruments: set[int] = set()
        for bag in bags:
            if _modulates_filter(records["pbag"], records["pmod"], bag):
                return True
            instruments.update(
                amount for op, amount in _generators(records["pbag"], records["pgen"], bag) if op == INSTRUMENT
            )
        for instrument in instruments:
            if instrument + 1 >= len(records["inst"]):
                continue
            for bag in range(records["inst"][instrument][1], records["inst"][instrument + 1][1]):
                if _modulates_filter(records["ibag"], records["imod"], bag):
                    return True
    return False


def without_filter(soundfont: bytes) -> bytes:
    """The same SoundFont with every zone's filter open: initialFilterFc at its maximum in instruments (0 added
    by presets), and no resonance nor filter modulation by the envelopes or LFO. Samples are untouched."""
    located = _pdta_location(soundfont)
    if located is None:
        return soundfont
    opened = bytearray(soundfont)
    for name, (start, size) in _sub_chunks(soundfont, *located).items():
        if name not in ("pgen", "igen"):
            continue
        for offset in range(start, start + size - 3, 4):
            (op,) = struct.unpack_from("<H", soundfont, offset)
            if op in FILTER_GENERATORS:
                open_value = FILTER_OPEN_CENTS if (name, op) == ("igen", INITIAL_FILTER_FC) else 0
                struct.pack_into("<h", opened, offset + 2, open_value)
    return bytes(opened)


def _modulates_filter(bags: list[tuple], modulators: list[tuple], bag: int) -> bool:
    return any(
        destination in (INITIAL_FILTER_FC, MOD_ENV_TO_FILTER_FC) and amount != 0
        for _, destination, amount, _, _ in _bag_records(bags, modulators, bag, column=1)
    )


def _generators(bags: list[tuple], generators: list[tuple], bag: int) -> list[tuple]:
    return _bag_records(bags, generators, bag, column=0)


def _bag_records(bags: list[tuple], records: list[tuple], bag: int, column: int) -> list[tuple]:
    """The records (generators: ``column`` 0, modulators: 1) of zone ``bag``: up to the next bag's first; none for
    the terminal bag or a bag index past the list."""
    if bag + 1 >= len(bags):
        return []
    return records[bags[bag][column] : bags[bag + 1][column]]


def _preset_records(soundfont: bytes) -> dict[str, list[tuple]] | None:
    located = _pdta_location(soundfont)
    if located is None:
        return None
    chunks = _sub_chunks(soundfont, *located)
    if any(name not in chunks for name in RECORD_FORMATS):
        return None
    records = {}
    for name, record_format in RECORD_FORMATS.items():
        start, size = chunks[name]
        width = struct.calcsize(record_format)
        records[name] = [
            struct.unpack_from(record_format, soundfont, offset)
            for offset in range(start, start + size - width + 1, width)
        ]
    return records


def _pdta_location(soundfont: bytes) -> tuple[int, int] | None:
    """(start, end) of the preset-data list's contents. Some files (MuseScore's sf3) leave out the pad byte RIFF
    puts after an odd-sized chunk, so a pad is skipped only where one is."""
    offset = 12
    while offset + 12 <= len(soundfont):
        chunk_id = soundfont[offset : offset + 4]
        (size,) = struct.unpack_from("<I", soundfont, offset + 4)
        if chunk_id == b"LIST" and soundfont[offset + 8 : offset + 12] == b"pdta":
            return offset + 12, min(offset + 8 + size, len(soundfont))
        offset += 8 + size
        if size % 2 and offset < len(soundfont) and soundfont[offset] == 0:
            offset += 1
    return None


def _sub_chunks(soundfont: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    chunks = {}
    offset = start
    while offset + 8 <= end:
        name = soundfont[offset : offset + 4].decode("latin-1")
        (size,) = struct.unpack_from("<I", soundfont, offset + 4)
        chunks[name] = (offset + 8, min(size, end - offset - 8))
        offset += 8 + size
    return chunks
