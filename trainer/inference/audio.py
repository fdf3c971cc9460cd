"""Reading recordings for transcription: any file soundfile opens, as mono 44.1 kHz float32, block by block.

Everything a user can hand to ``trainer infer`` passes through here, so this is where a bad file is caught
and named: missing, empty, truncated or not audio at all each give one :class:`UserError` line. Long files
are read in blocks (down-mixed, then resampled with a streaming soxr resampler), so memory stays bounded
by the block size, not by the length of the recording.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from pianoscribe.constants import SAMPLE_RATE
from pianoscribe.errors import UserError

BLOCK_FRAMES = 1 << 18  # source frames per read: ~6 s at 44.1 kHz, a few MB whatever the channel count
# Rates a recording can have. A damaged header can claim any rate: 1 Hz would make resampling to 44.1 kHz
# blow 0.05 s of audio up to 2205 s (a gigabyte), 2**31 Hz would shrink a whole file to no samples at all.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768000

# libsndfile's header log says "data : 176400 (should be 88178)" when a WAV/AIFF claims more than it holds
# libsndfile recognised the format but the file is broken (cut short, or a header without its data)
_BROKEN_NOT_FOREIGN = re.compile(r"malformed|no 'data' chunk|lost sync|unexpected end", re.IGNORECASE)
_CLAIMED_VERSUS_PRESENT = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of a readable recording says."""

    path: Path
    sample_rate: int
    channels: int
    frames: int  # per channel, at the file's own rate
    format: str  # e.g. "WAV", "FLAC", "OGG"
    subtype: str  # e.g. "PCM_16", "PCM_24", "FLOAT", "VORBIS"

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: Path | str) -> AudioInfo:
    """Open the header and check the file is usable; raise a one-line :class:`UserError` when it is not.

    Catches: a missing path, a folder, a zero-byte file, something that is not audio, a header that
    claims more samples than the file holds (a truncated download or copy), a recording of no samples, and
    a sample rate no recording has (a damaged header).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file (0 bytes)")
    try:
        info = soundfile.info(str(path), verbose=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        reason = _libsndfile_reason(error)
        if _BROKEN_NOT_FOREIGN.search(reason):
            raise UserError(f"{path}: truncated or corrupt audio file ({reason})") from error
        raise UserError(f"{path}: not an audio file soundfile can read ({reason})") from error
    truncation = _CLAIMED_VERSUS_PRESENT.search(info.extra_info or "")
    if truncation is not None and int(truncation.group(2)) > int(truncation.group(3)) + 1:
        raise UserError(
            f"{path}: truncated ({truncation.group(1)} chunk claims {truncation.group(2)} bytes, "
            f"file holds {truncation.group(3)})"
        )
    if info.frames <= 0:
        raise UserError(f"{path}: contains no audio samples")
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise UserError(
            f"{path}: sample rate {info.samplerate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
            "(a damaged header?)"
        )
    return AudioInfo(
        path=path,
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        frames=int(info.frames),
        format=str(info.format),
        subtype=str(info.subtype),
    )


def iter_mono_blocks(
    path: Path | str, sample_rate: int = SAMPLE_RATE, block_frames: int = BLOCK_FRAMES
) -> Iterator[np.ndarray]:
    """Yield the recording as consecutive mono float32 blocks at ``sample_rate``.

    Channels are averaged (a mix, not a pick, so a one-sided stereo file is not lost); integer formats
    come back scaled to [-1, 1) by libsndfile. A decode error mid-file, fewer samples than the header
    promised, or a sample that is not a finite number raises ``UserError`` after the blocks read so far.
    """
    info = audio_info(path)
    resampler = None
    if info.sample_rate != sample_rate:
        resampler = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality="HQ")
    frames_read = 0
    try:
        with soundfile.SoundFile(str(info.path)) as sound:
            while True:
                block = sound.read(block_frames, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                mono = _finite_mono(block, info, frames_read)
                frames_read += block.shape[0]
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=False)
                if mono.shape[0]:
                    yield mono
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise UserError(
            f"{info.path}: truncated or corrupt after {frames_read / info.sample_rate:.2f} s "
            f"({_libsndfile_reason(error)})"
        ) from error
    if frames_read < info.frames:
        raise UserError(f"{info.path}: truncated (header promises {info.frames} samples, file holds {frames_read})")
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        if tail.shape[0]:
            yield tail


def _finite_mono(block: np.ndarray, info: AudioInfo, first_frame: int) -> np.ndarray:
    """The block's channels averaged; ``UserError`` if a sample is NaN or infinite.

    Only float files can hold such samples, and only when damaged: passed on, one NaN turns every FFT
    slice it reaches into NaN and the transcription silently into nothing.
    """
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        seconds = (first_frame + int(np.argmin(finite))) / info.sample_rate
        raise UserError(f"{info.path}: damaged audio (a sample at {seconds:.2f} s is not a finite number)")
    mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    return np.ascontiguousarray(mono, dtype=np.float32)


def read_mono(path: Path | str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The whole recording as one mono float32 array at ``sample_rate`` (for short files and tests)."""
    blocks = list(iter_mono_blocks(path, sample_rate=sample_rate))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def _libsndfile_reason(error: BaseException) -> str:
    """libsndfile's own words, without the "Error opening 'path':" prefix that repeats the name."""
    message = " ".join(str(error).split())
    message = re.sub(r"^Error (opening|:)\s*('[^']*':)?\s*", "", message)
    return message.rstrip(".") or type(error).__name__
