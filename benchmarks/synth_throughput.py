"""Synthesis speed, side by side in one run: (a) the C++ engine alone, (b) ``builder synth`` end to end to disk,
(c) a plain vectorized NumPy implementation of the same synthesis; examples (FFT slices) per second and ratios.

All use the banks, corpora and ``synth`` parameters of params.yaml. (a) times ``Engine.synthesize`` on whole
shards after set-up, with augmentation off and on; (b) runs ``builder synth --n N`` as a subprocess and divides
N by the whole process's wall time (start-up, bank loading, hashing, writing; the train side augmented);
(c) ``PlainNumpySynth``, the baseline of the goals: the same plan with augmentation off (no detune, noise,
tilt, segment gain), written the way a good NumPy programmer would (one gather, one sparse segment sum for the
mix, per-voice energies, one batched pocketfft call); (d) ``NumpySynth``, a twin that also reproduces the
per-sample augmentation (detune by interpolation), to compare the augmented engine with the same work.
(c) and (d) are timed after planning, and each is checked against the engine on the same plan (float32 bank
and output): the printed errors show it is the same work.

    .venv/bin/python benchmarks/synth_throughput.py [--n 1000000] [--engine-rows 524288] [--numpy-rows 32768]
                                                    [--plain-rows 131072]

The machine is shared: run it more than once and report every run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.signal
import scipy.sparse
from rich.console import Console

from builder import banks, corpus
from builder.dataset import synth
from builder.dataset.plan import noise_table, piece_table, plan_segments, release_samples
from builder.engine import load_bank_into, new_engine
from pianoscribe.params import load_params

SHARD_ROWS = 65536
NUMPY_BATCH_ROWS = 512  # rows per call of the augmented twin: its [voices, 1024] temporaries stay in cache
PLAIN_BATCH_ROWS = 256  # rows per call of the plain version (best of 64-2048 measured, in the noise from 64 to 512)


# ---------------------------------------------------------------------------------------------- inputs


def load_inputs(settings, params, console):
    data_dir = Path("data")
    pieces = []
    for name in settings["corpora"]:
        path = corpus.ensure_corpus(name, data_dir, params.section("corpus"), console)
        pieces += [(piece.piece_id, piece.notes) for piece in corpus.read_corpus(path).pieces if len(piece.notes)]
    bank_list = [
        banks.read_bank(banks.ensure_bank(name, data_dir, params.section("bank"), console))
        for name in settings["train_banks"]
    ]
    return piece_table(pieces, release_samples(settings)), bank_list


def make_engine(table, bank_list, settings, precision, threads=0):
    engine = new_engine(threads)
    for bank in bank_list:
        load_bank_into(engine, bank, precision)
    table.load_into(engine)
    engine.set_noise(noise_table(settings["seed"]))
    return engine


def plan(table, bank_count, rows, settings, shard, augment=True):
    return plan_segments(
        table,
        bank_count,
        rows // settings["frames_per_segment"],
        np.random.default_rng([settings["seed"], 99, shard]),
        settings,
        augment=augment,
    )


# ---------------------------------------------------------------------------------------------- (a) engine


def engine_alone(table, bank_list, settings, rows, augment=True):
    engine = make_engine(table, bank_list, settings, settings["bank_precision"])
    buffers = synth.ShardBuffers.allocate(SHARD_ROWS, settings["storage"]["fft_dtype"])
    plans = [plan(table, len(bank_list), SHARD_ROWS, settings, shard, augment) for shard in range(rows // SHARD_ROWS)]
    started = time.perf_counter()
    for shard_plan in plans:
        synth.render_shard(engine, shard_plan, buffers, settings)
    return rows / (time.perf_counter() - started), engine.threads


# ---------------------------------------------------------------------------------------------- (b) end to end


def end_to_end(n):
    with tempfile.TemporaryDirectory(dir="data") as folder:
        command = [
            str(Path(sys.executable).parent / "builder"),
            "synth",
            "--n",
            str(n),
            "--out",
            str(Path(folder) / "dataset.zarr"),
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return n / (time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------- (c) numpy


class _NotePairs:
    """What both NumPy versions share: the engine's inputs as arrays, and the (segment, note) pairs of a plan."""

    def __init__(self, table, bank_list, settings, workers, trailing_silence):
        self.settings = settings
        self.frames = settings["frames_per_segment"]
        self.release = release_samples(settings)
        self.workers = workers
        piece_of_note = np.repeat(np.arange(len(table.extent)), np.diff(table.piece_start))
        self.sort_key = piece_of_note.astype(np.int64) << 40 | table.onset  # sorted: by piece, then onset
        self.table = table
        longest = np.zeros(len(table.extent), np.int64)
        np.maximum.at(longest, piece_of_note, table.offset - table.onset)
        self.reach = longest + self.release
        # with trailing_silence, one zero sample after the banks: reads outside a recording point at it
        self.audio = np.concatenate([bank.audio for bank in bank_list] + [np.zeros(int(trailing_silence), np.float32)])
        self.silence = len(self.audio) - 1
        bases = np.cumsum([0] + [len(bank.audio) for bank in bank_list[:-1]])
        self.offsets = np.stack([bank.offsets + base for bank, base in zip(bank_list, bases)])
        self.lengths = np.stack([bank.lengths for bank in bank_list])
        self.layer_velocities = np.stack([bank.layer_velocities for bank in bank_list])
        self.window = (
            scipy.signal.get_window(settings["window"], 1024).astype(np.float32)
            if settings["window"] == "hann"
            else np.ones(1024, np.float32)
        )

    def _note_pairs(self, plan):
        """Notes that can sound in each segment, found by binary search, and their flags for every frame."""
        frames, table = self.frames, self.table
        low = np.searchsorted(
            self.sort_key, plan.piece << 40 | np.maximum(plan.start_sample - self.reach[plan.piece], 0)
        )
        high = np.searchsorted(self.sort_key, plan.piece << 40 | (plan.start_sample + frames * 1024))
        counts = high - low
        pair_segment = np.repeat(np.arange(len(plan.piece)), counts)
        pair_note = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(low, counts)
        onset, offset = table.onset[pair_note], table.offset[pair_note]
        key_index = table.key[pair_note].astype(np.int64) - 21
        velocity = table.velocity[pair_note].astype(np.int64)
        start = plan.start_sample[pair_segment]
        frame_start = start[:, None] + np.arange(frames)[None, :] * 1024
        centre = frame_start + 512
        active = (onset[:, None] <= centre) & (centre < offset[:, None])
        onset_in = (frame_start <= onset[:, None]) & (onset[:, None] < frame_start + 1024)
        return pair_segment, onset, offset, key_index, velocity, start, active, onset_in


class NumpySynth(_NotePairs):
    """The engine's synthesis in vectorized NumPy: no Python loop over notes, segments or samples.

    Same rules: notes that can sound in a segment by binary search, layer ``min(floor(v/127 L), L-1)``,
    gain ``(v / layer velocity) ** exponent`` times the segment gain, linear-interpolation detune, linear
    release fade, noise from the same table, per-key energy of each key's own signal, flags from the notes,
    window, rfft, magnitude, tilt, float16.
    """

    def __init__(self, table, bank_list, settings, workers, noise):
        super().__init__(table, bank_list, settings, workers, trailing_silence=False)
        self.noise = noise
        frequencies = np.maximum(np.arange(512), 1) * 44100 / 1024
        self.octaves = np.log2(frequencies / float(settings["augment"]["tilt_pivot_hz"])).astype(np.float32)

    def _detuned(self, voice_start, voice_ratio, voice_onset, voice_base, inside, gain, envelope):
        """Linear interpolation at ``ratio`` samples per output sample (an exact double per voice)."""
        sample_index = np.arange(1024, dtype=np.float32)
        origin = (voice_start - voice_onset) * voice_ratio  # float64 per voice
        whole = np.floor(origin)
        relative = (origin - whole).astype(np.float32)[:, None] + sample_index[None, :] * voice_ratio.astype(
            np.float32
        )[:, None]
        step = np.floor(relative)
        fraction = relative - step
        index = np.where(inside, (whole.astype(np.int64) + voice_base)[:, None] + step.astype(np.int64), 0)
        below = self.audio[index]
        above = self.audio[index + 1]
        return np.where(inside, gain[:, None] * envelope * (below + fraction * (above - below)), np.float32(0))

    def synthesize(self, plan, fft_dtype):
        frames = self.frames
        segments = len(plan.piece)
        rows = segments * frames
        pair_segment, onset, offset, key_index, velocity, start, active, onset_in = self._note_pairs(plan)
        row_of = pair_segment[:, None] * frames + np.arange(frames)[None, :]
        key_active = np.zeros((rows, 88), np.uint8)
        key_onset = np.zeros((rows, 88), np.uint8)
        key_active[row_of[active], np.broadcast_to(key_index[:, None], active.shape)[active]] = 1
        key_onset[row_of[onset_in], np.broadcast_to(key_index[:, None], onset_in.shape)[onset_in]] = 1
        # the recording each pair plays
        bank = plan.bank[pair_segment]
        layers = self.layer_velocities.shape[1]
        layer = np.minimum(velocity * layers // 127, layers - 1)
        length = self.lengths[bank, key_index, layer]
        base = self.offsets[bank, key_index, layer]
        ratio = plan.detune_ratio[pair_segment]
        gain = (
            plan.gain[pair_segment]
            * (velocity / self.layer_velocities[bank, layer]) ** float(self.settings["velocity_exponent"])
        ).astype(np.float32)
        played = np.where(ratio == 1.0, length, np.ceil((length - 1) / ratio).astype(np.int64))
        audible_end = np.minimum(onset + played, offset + self.release)
        # (pair, frame) voices: frames the pair is audible in
        first = np.clip((onset - start) // 1024, 0, frames)
        last = np.clip((audible_end - start + 1023) // 1024, 0, frames)
        voice_counts = np.where(length > 1, np.maximum(last - first, 0), 0)
        voice_pair = np.repeat(np.arange(len(pair_segment)), voice_counts)
        voice_frame = (
            np.arange(voice_counts.sum())
            - np.repeat(np.cumsum(voice_counts) - voice_counts, voice_counts)
            + np.repeat(first, voice_counts)
        )
        # voices in (row, key) order, so each key's signal is a run of consecutive voices
        voice_row = pair_segment[voice_pair] * frames + voice_frame
        group_id = voice_row * 88 + key_index[voice_pair]
        order = np.argsort(group_id, kind="stable")
        voice_pair, voice_frame, group_id = voice_pair[order], voice_frame[order], group_id[order]
        # positions in the recording: an exact double per voice, then small float32 offsets per sample
        sample_index = np.arange(1024, dtype=np.float32)
        voice_start = start[voice_pair] + voice_frame * 1024  # absolute sample of j = 0
        voice_ratio = ratio[voice_pair]
        first_valid = np.clip(onset[voice_pair] - voice_start, 0, 1024)[:, None]
        end_valid = np.clip(audible_end[voice_pair] - voice_start, 0, 1024)[:, None]
        inside = (np.arange(1024)[None, :] >= first_valid) & (np.arange(1024)[None, :] < end_valid)
        release_at = (offset[voice_pair] - voice_start).astype(np.float32)[:, None]
        envelope = np.minimum(1.0, np.maximum(0.0, 1.0 - (sample_index[None, :] - release_at) / max(self.release, 1)))
        if np.all(voice_ratio == 1.0):  # no detune: read the recordings directly
            index = (voice_start - onset[voice_pair] + base[voice_pair])[:, None] + np.arange(1024)[None, :]
            values = self.audio[np.where(inside, index, 0)]
            contribution = np.where(inside, gain[voice_pair][:, None] * envelope * values, np.float32(0))
        else:
            contribution = self._detuned(
                voice_start, voice_ratio, onset[voice_pair], base[voice_pair], inside, gain[voice_pair], envelope
            )
        # each key's own signal per row, its energy, then the mix (groups sorted by row, then key)
        groups, group_index = np.unique(group_id, return_inverse=True)
        key_signal = _segment_sum(contribution, group_index, len(groups))
        key_energy = np.zeros((rows, 88), np.float32)
        key_energy[groups // 88, groups % 88] = np.einsum("ij,ij->i", key_signal, key_signal)
        mix = _segment_sum(key_signal, groups // 88, rows)
        # noise, window, FFT, magnitude, tilt
        row_segment = np.repeat(np.arange(segments), frames)
        noise_index = (plan.noise_offset[row_segment] + np.tile(np.arange(frames), segments) * 1024)[
            :, None
        ] + np.arange(1024)[None, :]
        mix += plan.noise_amplitude[row_segment][:, None] * self.noise[noise_index]
        spectrum = scipy.fft.rfft(mix * self.window, axis=1, workers=self.workers)[:, :512]
        magnitude = np.abs(spectrum)
        tilt = 10.0 ** (plan.tilt_db[row_segment][:, None] * self.octaves[None, :] / 20.0)
        fft_magnitude = (magnitude * tilt).astype(fft_dtype)
        return fft_magnitude, key_energy, key_active, key_onset


class PlainNumpySynth(_NotePairs):
    """The fair baseline: the same plan without augmentation, written the way a good NumPy programmer would.

    No detune, noise, tilt or segment gain, so every voice is a straight read of its recording: one fancy
    index gathers the 1024-sample slices of all voices of a batch of rows at once (positions outside the
    audible part of a recording read one appended zero sample), one multiply applies velocity gain and
    release fade, one ``np.add.reduceat`` mixes each row's voices (voices sorted by row), per-voice sums of
    squares go to a flat ``[rows * 88]`` energy table with ``np.bincount`` (the rare key sounding twice in a
    row, a note struck again in its own release, is summed first so its energy is that of the key's signal,
    as in the engine), then window, one batched float32 ``scipy.fft.rfft(workers=...)``, abs, astype.
    """

    def __init__(self, table, bank_list, settings, workers):
        super().__init__(table, bank_list, settings, workers, trailing_silence=True)

    def synthesize(self, plan, fft_dtype):
        if not (
            np.all(plan.gain == 1)
            and np.all(plan.detune_ratio == 1)
            and np.all(plan.noise_amplitude == 0)
            and np.all(plan.tilt_db == 0)
        ):
            raise ValueError("PlainNumpySynth renders unaugmented plans only")
        frames, release = self.frames, self.release
        segments = len(plan.piece)
        rows = segments * frames
        pair_segment, onset, offset, key_index, velocity, start, active, onset_in = self._note_pairs(plan)
        pair_cell = (pair_segment[:, None] * frames + np.arange(frames)[None, :]) * 88 + key_index[:, None]
        key_active = np.zeros(rows * 88, np.uint8)
        key_onset = np.zeros(rows * 88, np.uint8)
        key_active[pair_cell[active]] = 1
        key_onset[pair_cell[onset_in]] = 1
        # the recording each pair plays, and how much of it is audible (the release ends it early)
        bank = plan.bank[pair_segment]
        layers = self.layer_velocities.shape[1]
        layer = np.minimum(velocity * layers // 127, layers - 1)
        length = self.lengths[bank, key_index, layer]
        base = self.offsets[bank, key_index, layer]
        gain = ((velocity / self.layer_velocities[bank, layer]) ** float(self.settings["velocity_exponent"])).astype(
            np.float32
        )
        audible = np.where(length > 1, np.minimum(length, offset + release - onset), 0)  # samples from the onset
        # (pair, frame) voices: frames the pair is audible in, sorted by (row, key)
        first = np.clip((onset - start) // 1024, 0, frames)
        last = np.clip((onset + audible - start + 1023) // 1024, 0, frames)
        voice_counts = np.maximum(last - first, 0)
        voice_pair = np.repeat(np.arange(len(pair_segment)), voice_counts)
        voice_frame = (
            np.arange(voice_counts.sum())
            - np.repeat(np.cumsum(voice_counts) - voice_counts, voice_counts)
            + np.repeat(first, voice_counts)
        )
        voice_cell = (pair_segment[voice_pair] * frames + voice_frame) * 88 + key_index[voice_pair]
        order = np.argsort(voice_cell)
        voice_pair, voice_cell = voice_pair[order], voice_cell[order]
        voice_start = start[voice_pair] + voice_frame[order] * 1024  # absolute sample of j = 0
        # one gather: every voice's 1024 samples; voices that start or end inside the buffer read silence outside
        sample_index = np.arange(1024)
        read_from = voice_start - onset[voice_pair]  # position in the recording at j = 0
        index = (base[voice_pair] + read_from)[:, None] + sample_index[None, :]
        partial = np.flatnonzero((read_from < 0) | (read_from + 1024 > audible[voice_pair]))
        partial_position = read_from[partial, None] + sample_index[None, :]
        inside = partial_position.view(np.uint64) < audible[voice_pair][partial].astype(np.uint64)[:, None]
        index[partial] = np.where(inside, index[partial], self.silence)
        values = np.take(self.audio, index)
        # velocity gain for all, the linear release fade for voices whose note-off is before the buffer's end
        values *= gain[voice_pair][:, None]
        release_end = offset[voice_pair] + release - voice_start
        fading = np.flatnonzero(release_end - release < 1024)
        values[fading] *= np.minimum(
            np.float32(1),
            (release_end[fading, None] - sample_index[None, :]).astype(np.float32) * np.float32(1 / max(release, 1)),
        )
        # energies: per voice, summed per (row, key); a key with several voices in a row: energy of their sum
        voice_energy = np.einsum("ij,ij->i", values, values)
        key_energy = np.bincount(voice_cell, weights=voice_energy, minlength=rows * 88).astype(np.float32)
        repeated = np.flatnonzero(voice_cell[1:] == voice_cell[:-1])
        if len(repeated):
            shared = np.unique(np.concatenate([repeated, repeated + 1]))
            cells, run = np.unique(voice_cell[shared], return_inverse=True)
            key_signal = _segment_sum(values[shared], run, len(cells))
            key_energy[cells] = np.einsum("ij,ij->i", key_signal, key_signal)
        # the mix: each row's voices are one run
        mix = _segment_sum(values, voice_cell // 88, rows)
        mix *= self.window
        magnitude = np.abs(scipy.fft.rfft(mix, axis=1, workers=self.workers)[:, :512])
        fft_magnitude = magnitude.astype(fft_dtype)
        return (fft_magnitude, key_energy.reshape(rows, 88), key_active.reshape(rows, 88), key_onset.reshape(rows, 88))


def _segment_sum(values, segment, segments):
    """Rows of ``values`` summed by their sorted ``segment`` index, as a CSR matrix product: on [voices, 1024]
    float32 that is ~30x faster than ``np.add.reduceat(axis=0)`` and ~50x faster than ``np.add.at``."""
    indptr = np.searchsorted(segment, np.arange(segments + 1))
    summing = scipy.sparse.csr_matrix(
        (np.ones(len(segment), np.float32), np.arange(len(segment)), indptr), shape=(segments, len(segment))
    )
    return np.asarray(summing @ values)


def numpy_version(twin, table, bank_list, settings, rows, batch, augment, fft_dtypes):
    """Examples/s of ``twin`` (a NumpySynth or PlainNumpySynth) per output dtype, after planning; then its
    agreement with the engine on one batch of the same plan (float32 bank and output on both sides)."""
    plans = [plan(table, len(bank_list), batch, settings, shard, augment) for shard in range(rows // batch)]
    rates = {}
    for fft_dtype in fft_dtypes:
        started = time.perf_counter()
        for batch_plan in plans:
            twin.synthesize(batch_plan, fft_dtype)
        rates[fft_dtype] = rows / (time.perf_counter() - started)
    ours = twin.synthesize(plans[0], "float32")
    engine = make_engine(table, bank_list, settings, "float32")
    buffers = synth.ShardBuffers.allocate(batch, "float32")
    synth.render_shard(engine, plans[0], buffers, settings)
    scale = float(buffers.fft_magnitude.max())
    agreement = {
        "fft max error / max": float(np.abs(ours[0] - buffers.fft_magnitude).max()) / scale,
        "energy max rel. error": float(
            (np.abs(ours[1] - buffers.key_energy) / np.maximum(buffers.key_energy, 1e-3)).max()
        ),
        "flags equal": bool(np.array_equal(ours[2], buffers.key_active) and np.array_equal(ours[3], buffers.key_onset)),
    }
    return rates, agreement


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="examples for builder synth end to end")
    parser.add_argument("--engine-rows", type=int, default=8 * SHARD_ROWS)
    parser.add_argument("--numpy-rows", type=int, default=32768, help="rows timed for the augmented NumPy twin")
    parser.add_argument("--plain-rows", type=int, default=131072, help="rows timed for the plain NumPy version")
    arguments = parser.parse_args()
    console = Console(stderr=True)
    params = load_params()
    settings = synth.check_settings(params.section("synth"))
    fft_dtype = settings["storage"]["fft_dtype"]
    table, bank_list = load_inputs(settings, params, console)
    workers = os.cpu_count() or 1
    console.print("timing (c) plain NumPy, augmentation off ...")
    twin = PlainNumpySynth(table, bank_list, settings, workers)
    plain_rates, plain_agreement = numpy_version(
        twin,
        table,
        bank_list,
        settings,
        arguments.plain_rows,
        PLAIN_BATCH_ROWS,
        False,
        dict.fromkeys([fft_dtype, "float32"]),
    )
    console.print("timing (d) NumPy twin, augmentation on ...")
    twin = NumpySynth(table, bank_list, settings, workers, noise_table(settings["seed"]))
    twin_rates, twin_agreement = numpy_version(
        twin, table, bank_list, settings, arguments.numpy_rows, NUMPY_BATCH_ROWS, True, [fft_dtype]
    )
    del twin
    console.print("timing (a) engine ...")
    plain_engine_rate, threads = engine_alone(table, bank_list, settings, arguments.engine_rows, augment=False)
    engine_rate, _ = engine_alone(table, bank_list, settings, arguments.engine_rows)
    del bank_list
    console.print(f"timing (b) builder synth --n {arguments.n} ...")
    end_rate = end_to_end(arguments.n)
    plain_rate, twin_rate = plain_rates[fft_dtype], twin_rates[fft_dtype]
    print(
        f"\nsynthesis throughput, examples/s, on {workers} cores ({threads} engine threads; frames_per_segment "
        f"{settings['frames_per_segment']}, window {settings['window']}, fft {fft_dtype}, "
        f"engine bank {settings['bank_precision']})"
    )
    rows = [
        ("(a) C++ engine alone, augmentation off", plain_engine_rate),
        ("(a) C++ engine alone, augmentation on", engine_rate),
        (f"(b) builder synth --n {arguments.n:,}, whole process (train side augmented)", end_rate),
        (f"(c) plain NumPy, augmentation off, {fft_dtype} output", plain_rate),
        ("(c) plain NumPy, augmentation off, float32 output (no conversion)", plain_rates["float32"]),
        (f"(d) NumPy twin, augmentation on, {fft_dtype} output", twin_rate),
    ]
    for name, rate in rows:
        print(f"  {name:72s} {rate:10,.0f}")
    print(f"ratios against (c) plain NumPy, {fft_dtype} output (the baseline of the goals):")
    print(f"  engine, augmentation off / (c)  = {plain_engine_rate / plain_rate:6.1f}x   (goal >= 8; same work)")
    print(f"  engine, augmentation on / (c)   = {engine_rate / plain_rate:6.1f}x   (the engine does more work)")
    print(f"  builder synth end to end / (c)  = {end_rate / plain_rate:6.1f}x   (goal >= 2)")
    print("ratios against (c) plain NumPy, float32 output (it skips the float16 conversion the engine does):")
    print(f"  engine, augmentation off        = {plain_engine_rate / plain_rates['float32']:6.1f}x")
    print(f"  builder synth end to end        = {end_rate / plain_rates['float32']:6.1f}x")
    print("ratio against (d) the NumPy twin with augmentation (the same augmented work, per-sample detune):")
    print(f"  engine, augmentation on / (d)   = {engine_rate / twin_rate:6.1f}x")
    print("agreement with the engine on the same plan (float32 bank and output):")
    print("  (c) plain: " + _agreement(plain_agreement))
    print("  (d) twin:  " + _agreement(twin_agreement))


def _agreement(agreement):
    return ", ".join(
        f"{name} {value:.2g}" if isinstance(value, float) else f"{name} {value}" for name, value in agreement.items()
    )


if __name__ == "__main__":
    main()
