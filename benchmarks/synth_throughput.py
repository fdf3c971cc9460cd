"""Synthesis speed, side by side in one run: (a) the C++ engine alone, (b) ``builder synth`` end to end to disk,
(c) a plain vectorized NumPy implementation of the same synthesis; examples (FFT slices) per second and ratios.

All three use the banks, corpora and ``synth`` parameters of params.yaml (augmentation on, as for the train
side). (a) times ``Engine.synthesize`` on whole shards after set-up; (b) runs ``builder synth --n N`` as a
subprocess and divides N by the whole process's wall time (start-up, bank loading, hashing, writing);
(c) is timed on the same kind of plan after its own set-up, and its output is checked against the engine's
(same plan, float32 bank) so the comparison is of the same work.

    .venv/bin/python benchmarks/synth_throughput.py [--n 1000000] [--engine-rows 524288] [--numpy-rows 32768]

The machine is shared: run it more than once and take the best honest run.
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
from rich.console import Console

from builder import banks, corpus, synth
from builder.params import load_params, section

SHARD_ROWS = 65536
NUMPY_BATCH_ROWS = 512   # rows per NumPy call: its [voices, 1024] temporaries then stay in cache (fastest of 256-2048)


# ---------------------------------------------------------------------------------------------- inputs

def load_inputs(settings, params, console):
    data_dir = Path("data")
    pieces = []
    for name in settings["corpora"]:
        path = corpus.ensure_corpus(name, data_dir, section(params, "corpus", corpus.DEFAULT_SETTINGS), console)
        pieces += [(piece.piece_id, piece.notes) for piece in corpus.read_corpus(path).pieces if len(piece.notes)]
    bank_list = [banks.read_bank(banks.ensure_bank(name, data_dir, section(params, "bank", banks.DEFAULT_SETTINGS),
                                                   console)) for name in settings["train_banks"]]
    return synth.piece_table(pieces, synth.release_samples(settings)), bank_list


def make_engine(table, bank_list, settings, precision, threads=0):
    engine = synth.new_engine(threads)
    for bank in bank_list:
        synth.load_bank_into(engine, bank, precision)
    table.load_into(engine)
    engine.set_noise(synth.noise_table(settings["seed"]))
    return engine


def plan(table, bank_count, rows, settings, shard, augment=True):
    return synth.plan_segments(table, bank_count, rows // settings["frames_per_segment"],
                               np.random.default_rng([settings["seed"], 99, shard]), settings, augment=augment)


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
        command = [str(Path(sys.executable).parent / "builder"), "synth", "--n", str(n), "--out",
                   str(Path(folder) / "dataset.zarr")]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return n / (time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------- (c) numpy

class NumpySynth:
    """The engine's synthesis in vectorized NumPy: no Python loop over notes, segments or samples.

    Same rules: notes that can sound in a segment by binary search, layer ``min(floor(v/127 L), L-1)``,
    gain ``(v / layer velocity) ** exponent`` times the segment gain, linear-interpolation detune, linear
    release fade, noise from the same table, per-key energy of each key's own signal, flags from the notes,
    window, rfft, magnitude, tilt, float16.
    """

    def __init__(self, table, bank_list, settings, noise, workers):
        self.settings = settings
        self.frames = settings["frames_per_segment"]
        self.release = synth.release_samples(settings)
        self.noise = noise
        self.workers = workers
        piece_of_note = np.repeat(np.arange(len(table.extent)), np.diff(table.piece_start))
        self.sort_key = piece_of_note.astype(np.int64) << 40 | table.onset   # sorted: by piece, then onset
        self.table = table
        longest = np.zeros(len(table.extent), np.int64)
        np.maximum.at(longest, piece_of_note, table.offset - table.onset)
        self.reach = longest + self.release
        self.audio = np.concatenate([bank.audio for bank in bank_list])
        bases = np.cumsum([0] + [len(bank.audio) for bank in bank_list[:-1]])
        self.offsets = np.stack([bank.offsets + base for bank, base in zip(bank_list, bases)])
        self.lengths = np.stack([bank.lengths for bank in bank_list])
        self.layer_velocities = np.stack([bank.layer_velocities for bank in bank_list])
        self.window = scipy.signal.get_window(settings["window"], 1024).astype(np.float32) \
            if settings["window"] == "hann" else np.ones(1024, np.float32)
        frequencies = np.maximum(np.arange(512), 1) * 44100 / 1024
        self.octaves = np.log2(frequencies / float(settings["augment"]["tilt_pivot_hz"])).astype(np.float32)

    def _detuned(self, voice_start, voice_ratio, voice_onset, voice_base, inside, gain, envelope):
        """Linear interpolation at ``ratio`` samples per output sample (an exact double per voice)."""
        sample_index = np.arange(1024, dtype=np.float32)
        origin = (voice_start - voice_onset) * voice_ratio                     # float64 per voice
        whole = np.floor(origin)
        relative = ((origin - whole).astype(np.float32)[:, None]
                    + sample_index[None, :] * voice_ratio.astype(np.float32)[:, None])
        step = np.floor(relative)
        fraction = relative - step
        index = np.where(inside, (whole.astype(np.int64) + voice_base)[:, None] + step.astype(np.int64), 0)
        below = self.audio[index]
        above = self.audio[index + 1]
        return np.where(inside, gain[:, None] * envelope * (below + fraction * (above - below)), np.float32(0))

    def synthesize(self, plan):
        frames, table = self.frames, self.table
        segments = len(plan.piece)
        rows = segments * frames
        span = frames * 1024
        # (segment, note) pairs: notes that can sound in the segment
        low = np.searchsorted(self.sort_key, plan.piece << 40 | np.maximum(plan.start_sample - self.reach[plan.piece], 0))
        high = np.searchsorted(self.sort_key, plan.piece << 40 | (plan.start_sample + span))
        counts = high - low
        pair_segment = np.repeat(np.arange(segments), counts)
        pair_note = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(low, counts)
        onset, offset = table.onset[pair_note], table.offset[pair_note]
        key_index = table.key[pair_note].astype(np.int64) - 21
        velocity = table.velocity[pair_note].astype(np.int64)
        start = plan.start_sample[pair_segment]
        # flags from the notes, for every frame of every pair
        frame_start = start[:, None] + np.arange(frames)[None, :] * 1024
        centre = frame_start + 512
        active = (onset[:, None] <= centre) & (centre < offset[:, None])
        onset_in = (frame_start <= onset[:, None]) & (onset[:, None] < frame_start + 1024)
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
        gain = (plan.gain[pair_segment] * (velocity / self.layer_velocities[bank, layer])
                ** float(self.settings["velocity_exponent"])).astype(np.float32)
        played = np.where(ratio == 1.0, length, np.ceil((length - 1) / ratio).astype(np.int64))
        audible_end = np.minimum(onset + played, offset + self.release)
        # (pair, frame) voices: frames the pair is audible in
        first = np.clip((onset - start) // 1024, 0, frames)
        last = np.clip((audible_end - start + 1023) // 1024, 0, frames)
        voice_counts = np.where(length > 1, np.maximum(last - first, 0), 0)
        voice_pair = np.repeat(np.arange(len(pair_note)), voice_counts)
        voice_frame = (np.arange(voice_counts.sum()) - np.repeat(np.cumsum(voice_counts) - voice_counts, voice_counts)
                       + np.repeat(first, voice_counts))
        # voices in (row, key) order, so each key's signal is a run of consecutive voices
        voice_row = pair_segment[voice_pair] * frames + voice_frame
        group_id = voice_row * 88 + key_index[voice_pair]
        order = np.argsort(group_id, kind="stable")
        voice_pair, voice_frame, group_id = voice_pair[order], voice_frame[order], group_id[order]
        # positions in the recording: an exact double per voice, then small float32 offsets per sample
        sample_index = np.arange(1024, dtype=np.float32)
        voice_start = start[voice_pair] + voice_frame * 1024                 # absolute sample of j = 0
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
            contribution = self._detuned(voice_start, voice_ratio, onset[voice_pair], base[voice_pair], inside,
                                         gain[voice_pair], envelope)
        # each key's own signal per row, its energy, then the mix (groups sorted by row, then key)
        starts = np.flatnonzero(np.r_[True, group_id[1:] != group_id[:-1]])
        key_signal = np.add.reduceat(contribution, starts, axis=0) if len(starts) else np.zeros((0, 1024), np.float32)
        groups = group_id[starts]
        key_energy = np.zeros((rows, 88), np.float32)
        key_energy[groups // 88, groups % 88] = (key_signal * key_signal).sum(axis=1)
        mix = np.zeros((rows, 1024), np.float32)
        group_rows = groups // 88
        row_starts = np.flatnonzero(np.r_[True, group_rows[1:] != group_rows[:-1]]) if len(groups) else starts
        if len(groups):
            mix[group_rows[row_starts]] = np.add.reduceat(key_signal, row_starts, axis=0)
        # noise, window, FFT, magnitude, tilt
        row_segment = np.repeat(np.arange(segments), frames)
        noise_index = (plan.noise_offset[row_segment] + np.tile(np.arange(frames), segments) * 1024)[:, None] \
            + np.arange(1024)[None, :]
        mix += plan.noise_amplitude[row_segment][:, None] * self.noise[noise_index]
        spectrum = scipy.fft.rfft(mix * self.window, axis=1, workers=self.workers)[:, :512]
        magnitude = np.abs(spectrum)
        tilt = 10.0 ** (plan.tilt_db[row_segment][:, None] * self.octaves[None, :] / 20.0)
        fft_magnitude = (magnitude * tilt).astype(self.settings["storage"]["fft_dtype"])
        return fft_magnitude, key_energy, key_active, key_onset


def numpy_version(table, bank_list, settings, rows, workers, augment=True):
    numpy_synth = NumpySynth(table, bank_list, settings, synth.noise_table(settings["seed"]), workers)
    batch = NUMPY_BATCH_ROWS
    plans = [plan(table, len(bank_list), batch, settings, shard, augment) for shard in range(rows // batch)]
    started = time.perf_counter()
    for batch_plan in plans:
        numpy_synth.synthesize(batch_plan)
    rate = rows / (time.perf_counter() - started)
    # the same work: compare with the engine on one batch (float32 bank, float32 output)
    check_settings = {**settings, "storage": {**settings["storage"], "fft_dtype": "float32"}}
    numpy_check = NumpySynth(table, bank_list, check_settings, synth.noise_table(settings["seed"]), workers)
    ours = numpy_check.synthesize(plans[0])
    engine = make_engine(table, bank_list, settings, "float32")
    buffers = synth.ShardBuffers.allocate(batch, "float32")
    synth.render_shard(engine, plans[0], buffers, check_settings)
    scale = float(buffers.fft_magnitude.max())
    agreement = {
        "fft_magnitude max error / max": float(np.abs(ours[0] - buffers.fft_magnitude).max()) / scale,
        "key_energy max relative error": float((np.abs(ours[1] - buffers.key_energy)
                                                / np.maximum(buffers.key_energy, 1e-3)).max()),
        "flags equal": bool(np.array_equal(ours[2], buffers.key_active) and np.array_equal(ours[3], buffers.key_onset)),
    }
    return rate, agreement


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="examples for builder synth end to end")
    parser.add_argument("--engine-rows", type=int, default=8 * SHARD_ROWS)
    parser.add_argument("--numpy-rows", type=int, default=64 * NUMPY_BATCH_ROWS)
    arguments = parser.parse_args()
    console = Console(stderr=True)
    params = load_params()
    settings = synth.check_settings(section(params, "synth", synth.DEFAULT_SETTINGS))
    table, bank_list = load_inputs(settings, params, console)
    workers = os.cpu_count() or 1
    console.print("timing (c) numpy ...")
    numpy_rate, agreement = numpy_version(table, bank_list, settings, arguments.numpy_rows, workers)
    plain_numpy_rate, plain_agreement = numpy_version(table, bank_list, settings, arguments.numpy_rows, workers,
                                                      augment=False)
    console.print("timing (a) engine ...")
    engine_rate, threads = engine_alone(table, bank_list, settings, arguments.engine_rows)
    plain_engine_rate, _ = engine_alone(table, bank_list, settings, arguments.engine_rows, augment=False)
    del bank_list
    console.print(f"timing (b) builder synth --n {arguments.n} ...")
    end_rate = end_to_end(arguments.n)
    print(f"\nsynthesis throughput on {workers} cores ({threads} engine threads; frames_per_segment "
          f"{settings['frames_per_segment']}, window {settings['window']}, augmentation on, "
          f"fft {settings['storage']['fft_dtype']}, bank {settings['bank_precision']})")
    print(f"  {'(a) C++ engine alone':40s} {engine_rate:12,.0f} examples/s")
    print(f"  {f'(b) builder synth --n {arguments.n} (process)':40s} {end_rate:12,.0f} examples/s")
    print(f"  {'(c) vectorized NumPy, compute only':40s} {numpy_rate:12,.0f} examples/s")
    print(f"  ratios: engine / numpy = {engine_rate / numpy_rate:.1f}x (goal >= 8), "
          f"end to end / numpy = {end_rate / numpy_rate:.1f}x (goal >= 2)")
    print("  numpy vs engine on the same plan: " + _agreement(agreement))
    print("  without augmentation (no detune: recordings read directly, as for the test side):")
    print(f"  {'(a) C++ engine alone':40s} {plain_engine_rate:12,.0f} examples/s")
    print(f"  {'(c) vectorized NumPy, compute only':40s} {plain_numpy_rate:12,.0f} examples/s")
    print(f"  ratio: engine / numpy = {plain_engine_rate / plain_numpy_rate:.1f}x; same plan: "
          + _agreement(plain_agreement))


def _agreement(agreement):
    return ", ".join(f"{name} {value:.2g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in agreement.items())


if __name__ == "__main__":
    main()
