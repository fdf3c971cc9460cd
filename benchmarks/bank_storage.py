"""Would int16 storage lose anything that matters? Quantization noise of built banks, two ways.

* one scale for the whole bank (full scale = the loudest peak), as a plain int16 audio array would be;
* one scale per recording (an extra [88, L] float array of scales).

For each recording the noise (uniform, LSB / sqrt(12)) is compared with the recording's own peak and with
the quietest level the bank keeps (``tail_db`` below that peak). The kept tail must stay above the noise
for int16 to be "lossless enough". Usage: ``python benchmarks/bank_storage.py [data/banks/*.h5]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from builder import banks


def quantization_report(bank: banks.Bank) -> dict[str, float]:
    tail_db = float(bank.attrs["settings"]["tail_db"])
    bank_lsb = np.abs(bank.audio).max() / 32767.0
    noise_re_peak_bank = []
    noise_re_peak_own = []
    measured_error_db = []
    for key_index in range(88):
        for layer in range(bank.n_layers):
            recording = bank.recording(key_index + banks.LOWEST_KEY, layer)
            if recording.size == 0:
                continue
            peak = float(np.abs(recording).max())
            noise_re_peak_bank.append(20 * np.log10(bank_lsb / np.sqrt(12) / peak))
            own_lsb = peak / 32767.0
            noise_re_peak_own.append(20 * np.log10(own_lsb / np.sqrt(12) / peak))
            quantized = np.round(recording / bank_lsb) * bank_lsb
            error_rms = float(np.sqrt(np.mean((quantized - recording).astype(np.float64) ** 2)))
            measured_error_db.append(20 * np.log10(max(error_rms, 1e-30) / peak))
    bank_wide = np.array(noise_re_peak_bank)
    return {
        "tail_db": tail_db,
        "bank_scale_noise_db_worst": float(bank_wide.max()),
        "bank_scale_noise_db_median": float(np.median(bank_wide)),
        "bank_scale_measured_db_worst": float(np.max(measured_error_db)),
        "bank_scale_share_above_tail": float(np.mean(bank_wide > tail_db)),
        "own_scale_noise_db": float(np.max(noise_re_peak_own)),
        "float32_mb": bank.audio.nbytes / 1e6,
        "int16_mb": bank.audio.nbytes / 2e6,
    }


def main(paths: list[str]) -> None:
    for path in paths or sorted(str(found) for found in Path("data/banks").glob("*.h5")):
        report = quantization_report(banks.read_bank(path))
        print(
            f"{path}: float32 {report['float32_mb']:.0f} MB, int16 {report['int16_mb']:.0f} MB; kept tails reach "
            f"{report['tail_db']:g} dB re each recording's peak"
        )
        print(
            f"  int16, one scale per bank: noise {report['bank_scale_noise_db_median']:.1f} dB re peak (median), "
            f"{report['bank_scale_noise_db_worst']:.1f} dB (worst, measured "
            f"{report['bank_scale_measured_db_worst']:.1f}); "
            f"{100 * report['bank_scale_share_above_tail']:.0f}% of recordings have noise above their kept tail"
        )
        print(
            f"  int16, one scale per recording: noise {report['own_scale_noise_db']:.1f} dB re peak for every recording"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
