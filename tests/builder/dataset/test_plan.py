"""The segment draws of a shard are the same bits on every CPU kind (numpy's SIMD kernels are chosen at run time)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from builder.dataset.plan import libm_power
from tests.builder.conftest import tiny_settings

# Plans shards of the tiny corpus with the store's settings and prints a sha256 of every draw, augmented as the
# train side is; its settings come as the JSON of argv[1].
PLAN_DIGEST = """
import hashlib, json, sys
from pathlib import Path
from builder.dataset import synth
from builder.dataset.plan import piece_table, release_samples
from builder.dataset.shards import ShardSpan, plan_shard
settings = json.loads(sys.argv[1])
pieces = synth._pieces_by_side(settings, {name: Path(name) for name in settings["corpora"]})["train"]
table = piece_table(pieces, release_samples(settings))
digest = hashlib.sha256()
for index in range(8):
    plan = plan_shard(table, 2, ShardSpan("train", index, 0, 16384), settings)
    for name, values in sorted(vars(plan).items()):
        digest.update(name.encode() + values.tobytes())
print(digest.hexdigest())
"""


def numpy_dispatch_targets() -> list[str]:
    """The SIMD targets numpy dispatches to on this CPU, above its baseline (e.g. X86_V3, X86_V4, AVX512_ICL)."""
    from numpy._core import _multiarray_umath

    features = _multiarray_umath.__cpu_features__
    return [target for target in _multiarray_umath.__cpu_dispatch__ if features.get(target)]


def plan_digest(settings: dict, environment: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PLAN_DIGEST, json.dumps(settings)],
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_segment_draws_do_not_depend_on_numpy_simd_kernels(tiny_files):
    # numpy's float64 power ran an AVX-512 kernel where the CPU had one: ~5 % of detune ratios 1 ulp off an
    # AVX2 CPU's, and some FFT magnitudes of the store 1 float16 ulp off. Here numpy without any dispatched kernel
    # (an older CPU's view) must draw the same bits as numpy with all of this CPU's.
    targets = numpy_dispatch_targets()
    if not targets:
        pytest.skip("numpy dispatches no SIMD kernel above its baseline on this CPU")
    settings = tiny_settings(tiny_files)
    settings["augment"]["detune_cents"] = 50.0  # wider draws than the default: more distinct values, same code
    everything = plan_digest(settings, {})
    baseline = plan_digest(settings, {"NPY_DISABLE_CPU_FEATURES": " ".join(targets)})
    assert everything == baseline


def test_libm_power_is_the_c_library_pow_element_by_element():
    exponents = np.random.default_rng(0).uniform(-1.0, 1.0, 4096) * 0.3
    expected = [math.pow(10.0, exponent) for exponent in exponents.tolist()]
    assert libm_power(10.0, exponents).tolist() == expected
    assert libm_power(2.0, np.zeros(3)).tolist() == [1.0, 1.0, 1.0]
