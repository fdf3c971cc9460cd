"""The ONNX twin of a model file: the same heads as Keras, ModelInfo in its metadata, the same bytes every export,
and one-line errors for files that are not one."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from trainer.model import architectures, model_file, onnx_file
from trainer.model.info import HEADS, ModelInfo


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A context model (the default architecture, thresholds set) saved as .keras and exported beside it."""
    folder = tmp_path_factory.mktemp("onnx")
    settings = defaults("fit")
    info = ModelInfo(
        arch="context", context_frames=5, lookahead_frames=1, window="hann", energy_scale=3.5, frame_threshold=0.3
    )
    rng = np.random.default_rng(0)
    mean, std = rng.normal(2, 1, 512).astype(np.float32), rng.uniform(0.5, 2, 512).astype(np.float32)
    model = architectures.build_model("context", settings, info, mean, std)
    keras_path = folder / "model.keras"
    model_file.save_model(model, keras_path)
    return model, info, keras_path, onnx_file.export_onnx(keras_path)


def test_onnxruntime_gives_the_heads_keras_gives(exported):
    model, info, keras_path, onnx_path = exported
    assert onnx_path == keras_path.with_suffix(".onnx")
    session, onnx_info, exported_from = onnx_file.load_onnx(onnx_path)
    assert onnx_info == info and exported_from == onnx_file.file_sha256(keras_path)
    rng = np.random.default_rng(1)
    for batch, frames in ((1, 1), (2, 7), (1, 300)):
        # magnitudes like real ones: mostly tiny, some loud, exact zeros (log(1 + x) at x = 0)
        magnitude = (rng.exponential(1.0, (batch, frames, 512)) ** 3 * (rng.random((batch, frames, 512)) < 0.7)).astype(
            np.float32
        )
        expected = model(magnitude, training=False)
        got = dict(
            zip([value.name for value in session.get_outputs()], session.run(None, {"fft_magnitude": magnitude}))
        )
        for head in HEADS:
            assert got[head].shape == (batch, frames, 88)
            np.testing.assert_allclose(got[head], np.asarray(expected[head]), atol=1e-5, rtol=1e-5)  # float32 rounding


def test_the_same_model_exports_to_the_same_bytes(exported, tmp_path):
    _, _, keras_path, onnx_path = exported
    again = onnx_file.export_onnx(keras_path, tmp_path / "again.onnx")  # a second export in the same process
    assert again.read_bytes() == onnx_path.read_bytes()
    graph = onnx.load(str(again)).graph
    assert [value.name for value in graph.input] == ["fft_magnitude"]
    assert sorted(value.name for value in graph.output) == sorted(HEADS)
    assert not [path for path in tmp_path.iterdir() if path.name != "again.onnx"]  # no temporaries left


def test_bad_onnx_files_are_one_line_errors(exported, tmp_path):
    with pytest.raises(UserError, match="no such model file"):
        onnx_file.load_onnx(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(UserError, match="cannot load the ONNX model"):
        onnx_file.load_onnx(garbage)
    # a valid ONNX model that is not ours: no model info in its metadata
    identity = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["fft_magnitude"], ["active"])],
            "foreign",
            [onnx.helper.make_tensor_value_info("fft_magnitude", onnx.TensorProto.FLOAT, ["b", "t", 512])],
            [onnx.helper.make_tensor_value_info("active", onnx.TensorProto.FLOAT, ["b", "t", 512])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 15)],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(identity, str(foreign))
    with pytest.raises(UserError, match="not a pianoscribe model"):
        onnx_file.load_onnx(foreign)
    # ours, but for another grid: the same check as for a .keras file
    proto = onnx.load(str(exported[3]))
    for entry in proto.metadata_props:
        if entry.key == onnx_file.METADATA_INFO:
            entry.value = entry.value.replace('"buffer_size": 1024', '"buffer_size": 2048')
    other_grid = tmp_path / "other_grid.onnx"
    onnx.save(proto, str(other_grid))
    with pytest.raises(UserError, match="featurization mismatch"):
        onnx_file.load_onnx(other_grid)
    with pytest.raises(UserError, match=r"must end in \.onnx"):
        onnx_file.export_onnx(exported[2], tmp_path / "model.bin")


def test_an_interpolation_matrix_becomes_gathers_and_a_dense_one_stays():
    import onnxruntime

    rng = np.random.default_rng(2)
    rows, columns = 64, 40
    sparse = np.zeros((rows, columns), np.float32)
    below = rng.integers(0, rows - 1, columns)
    sparse[below, np.arange(columns)] = rng.random(columns)
    sparse[below + 1, np.arange(columns)] = rng.random(columns)
    sparse[:, 3] = 0  # a point above the last bin reads nothing
    sparse[:, 5] = 0
    sparse[7, 5] = 0.5  # a point exactly on a bin
    dense = rng.random((columns, 8), dtype=np.float32)
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("MatMul", ["x", "sparse"], ["h"]),
            onnx.helper.make_node("MatMul", ["h", "dense"], ["y"]),
        ],
        "two products",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["b", "t", rows])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["b", "t", 8])],
        [onnx.numpy_helper.from_array(sparse, "sparse"), onnx.numpy_helper.from_array(dense, "dense")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 15)])
    assert onnx_file.interpolations_as_gathers(model) == 1
    onnx_file.canonicalize(model)
    onnx.checker.check_model(model)
    assert [node.op_type for node in model.graph.node].count("MatMul") == 1  # the dense product is left alone
    x = rng.random((2, 5, rows), dtype=np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x @ sparse @ dense, rtol=1e-5, atol=1e-6)
