"""The ONNX twin of the model file, ``models/model.onnx``: exported from the ``.keras`` file at the end of ``trainer
fit`` (or by ``trainer export``) and run by inference with onnxruntime, so transcribing never imports TensorFlow
(docs/inference.md).

The ONNX file carries what the ``.keras`` carries besides the weights: ``ModelInfo`` as JSON in its metadata, and
the sha256 of the ``.keras`` bytes it was exported from, so a caller can tell a current twin from a stale one.
Export is deterministic: tf2onnx names and orders nodes by process-wide counters, so the graph is rewritten in a
canonical order with canonical names; the same ``.keras`` bytes give the same ``.onnx`` bytes. One rewrite makes
it faster: a product with a fixed interpolation matrix (``HarmonicSampler``: two nonzeros per column, a third of
the default model's multiply-adds) becomes two gathers and a weighted sum.

Reading needs only onnxruntime (imported when loading); writing needs TensorFlow, tf2onnx and onnx (imported when
exporting).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pianoscribe.atomic import atomic_path
from pianoscribe.constants import N_BINS, N_KEYS
from pianoscribe.errors import UserError
from trainer.model.info import HEADS, ModelInfo, grid_problems

if TYPE_CHECKING:
    import onnx

INPUT_NAME = "fft_magnitude"
METADATA_INFO = "pianoscribe.model_info"  # ModelInfo as JSON
METADATA_SOURCE = "pianoscribe.keras_sha256"  # the .keras file it was exported from
METADATA_FORMAT = "pianoscribe.format_version"
FORMAT_VERSION = "1"
OPSET = 15  # what tf2onnx 1.17 picks by default; onnxruntime runs opsets up to 21+


def onnx_twin(keras_path: Path | str) -> Path:
    """Where the ONNX export of a ``.keras`` file lives: beside it, ``NAME.onnx``."""
    return Path(keras_path).with_suffix(".onnx")


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- writing


def export_onnx(keras_path: Path | str, onnx_path: Path | str | None = None) -> Path:
    """Export the model in ``keras_path`` to ONNX (default: its twin ``NAME.onnx``), atomically; returns the path.

    The graph is the model's inference pass (training-only layers pass their input through) for any batch and
    sequence length, ``fft_magnitude [batch, time, 512 (+ long_fft_bins)]`` in, heads ``[batch, time, 88]`` out.
    """
    import onnx
    import tensorflow as tf

    from trainer.model.model_file import load_model

    keras_path = Path(keras_path)
    onnx_path = onnx_twin(keras_path) if onnx_path is None else Path(onnx_path)
    if onnx_path.suffix != ".onnx":
        raise UserError(f"{onnx_path}: the ONNX model file must end in .onnx")
    model, info = load_model(keras_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{onnx_path.name}.", dir=onnx_path.parent) as folder:
        raw_path = Path(folder) / "raw.onnx"
        input_bins = N_BINS + int(info.long_fft_bins)  # the long window's bins follow the FFT's
        signature = [tf.TensorSpec([None, None, input_bins], tf.float32, name=INPUT_NAME)]
        with warnings.catch_warnings():  # tf2onnx's own FutureWarning about np.object is not the user's concern
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(raw_path), format="onnx", verbose=False, input_signature=signature, opset_version=OPSET)
        proto = onnx.load(str(raw_path))
    interpolations_as_gathers(proto)
    canonicalize(proto)
    metadata = {
        METADATA_FORMAT: FORMAT_VERSION,
        METADATA_INFO: json.dumps(info.to_dict(), sort_keys=True),
        METADATA_SOURCE: file_sha256(keras_path),
    }
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = f"pianoscribe {info.arch} model exported from {keras_path.name}"
    onnx.checker.check_model(proto)
    with atomic_path(onnx_path, suffix=".onnx") as temporary:
        temporary.write_bytes(proto.SerializeToString(deterministic=True))
    return onnx_path


def interpolations_as_gathers(model: onnx.ModelProto) -> int:
    """Replace ``MatMul(x, B)`` by ``x[..., first] * w_first + x[..., last] * w_last`` wherever ``B`` is a constant
    matrix with at most two nonzeros per column (linear interpolation between neighbouring rows); returns how many.

    The same sums up to float32 rounding, without multiplying by the zeros: the harmonic sampler of the default
    model is 512 x 2816 with 2 nonzeros per column, 1.44 M of its 2.91 M multiply-adds per frame. The gathers run
    on ``x`` with its last axis moved first (onnxruntime gathers whole rows fast, single elements of the last
    axis slowly): measured on 1032 frames, 36 ms against 77 ms for the MatMul and 128 ms for last-axis gathers.
    """
    import numpy as np
    from onnx import helper, numpy_helper, shape_inference

    graph = model.graph
    ranks = {
        value.name: len(value.type.tensor_type.shape.dim)
        for value in [*shape_inference.infer_shapes(model).graph.value_info, *graph.input]
        if value.type.tensor_type.HasField("shape")
    }
    constants = {tensor.name: tensor for tensor in graph.initializer}
    rewritten, replaced = [], 0
    for node in graph.node:
        matrix = constants.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        values = numpy_helper.to_array(matrix) if matrix is not None else None
        rank = ranks.get(node.input[0], 0)
        if values is None or values.ndim != 2 or values.dtype != np.float32 or values.shape[0] < 16 or rank < 2:
            rewritten.append(node)
            continue
        nonzero = values != 0
        if nonzero.sum(axis=0).max() > 2:
            rewritten.append(node)
            continue
        rows = np.arange(values.shape[0])[:, None]
        first = np.where(nonzero, rows, values.shape[0]).min(axis=0)  # a column of zeros reads row 0 with weight 0
        last = np.where(nonzero, rows, -1).max(axis=0)
        first, last = np.where(first == values.shape[0], 0, first), np.maximum(last, 0)
        columns = np.arange(values.shape[1])
        weight_first = values[first, columns]
        weight_last = np.where(last != first, values[last, columns], 0).astype(np.float32)
        step = f"{node.name}/interpolation/"
        per_row = (values.shape[1],) + (1,) * (rank - 1)  # weights broadcast over the other axes
        for name, array in (
            ("first", first.astype(np.int64)),
            ("last", last.astype(np.int64)),
            ("weight_first", weight_first.astype(np.float32).reshape(per_row)),
            ("weight_last", weight_last.reshape(per_row)),
        ):
            graph.initializer.append(numpy_helper.from_array(array, step + name))
        x, y = node.input[0], node.output[0]
        rewritten += [
            helper.make_node("Transpose", [x], [step + "rows"], perm=[rank - 1, *range(rank - 1)]),
            helper.make_node("Gather", [step + "rows", step + "first"], [step + "at_first"], axis=0),
            helper.make_node("Gather", [step + "rows", step + "last"], [step + "at_last"], axis=0),
            helper.make_node("Mul", [step + "at_first", step + "weight_first"], [step + "part_first"]),
            helper.make_node("Mul", [step + "at_last", step + "weight_last"], [step + "part_last"]),
            helper.make_node("Add", [step + "part_first", step + "part_last"], [step + "sum"]),
            helper.make_node("Transpose", [step + "sum"], [y], perm=[*range(1, rank), 0]),
        ]
        replaced += 1
    del graph.node[:]
    graph.node.extend(rewritten)
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return replaced


def canonicalize(model: onnx.ModelProto) -> None:
    """Rewrite the graph in place so that its bytes depend only on what it computes, not on converter counters.

    Nodes are put in a topological order that breaks ties by what a node is (operator, attributes, canonical
    names of its inputs, content of its constant inputs), and renamed by that order (``t12``, ``c3``, ``Conv_7``);
    the graph's input and outputs keep their names.
    """
    graph = model.graph
    keep = {value.name for value in graph.input} | {value.name for value in graph.output}
    constants = {tensor.name: tensor for tensor in graph.initializer}
    constant_digest = {name: _content_digest(tensor) for name, tensor in constants.items()}
    nodes = list(graph.node)
    for node in nodes:
        if any(attribute.HasField("g") or len(attribute.graphs) for attribute in node.attribute):
            raise ValueError(f"ONNX export: node {node.name} ({node.op_type}) has a subgraph; cannot order it")
    producer = {output: index for index, node in enumerate(nodes) for output in node.output if output}
    waiting_for = [{name for name in node.input if name in producer} for node in nodes]
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in set(node.input):
            consumers.setdefault(name, []).append(index)
    renamed: dict[str, str] = {name: name for name in keep}

    def key(index: int) -> tuple[Any, ...]:
        node = nodes[index]
        inputs = tuple(renamed.get(name, f"const:{constant_digest.get(name, name)}") for name in node.input)
        attributes = tuple(attribute.SerializeToString(deterministic=True) for attribute in node.attribute)
        return (node.op_type, node.domain, inputs, attributes, len(node.output))

    ready = [(key(index), index) for index, waits in enumerate(waiting_for) if not waits]
    heapq.heapify(ready)
    ordered: list[onnx.NodeProto] = []
    constant_order: list[str] = []
    while ready:
        _, index = heapq.heappop(ready)
        node = nodes[index]
        for name in node.input:
            if name in constants and name not in renamed:
                renamed[name] = f"c{len(constant_order)}"
                constant_order.append(name)
        for output in node.output:
            if output and output not in renamed:
                renamed[output] = f"t{len(renamed)}"
        node.name = f"{node.op_type}_{len(ordered)}"
        ordered.append(node)
        for output in node.output:
            for consumer in consumers.get(output, []):
                waiting_for[consumer].discard(output)
                if not waiting_for[consumer]:
                    heapq.heappush(ready, (key(consumer), consumer))
    if len(ordered) != len(nodes):
        raise ValueError("ONNX export: the graph has a cycle or an unreachable node")
    for node in ordered:
        node.input[:] = [renamed.get(name, name) if name else name for name in node.input]
        node.output[:] = [renamed.get(name, name) if name else name for name in node.output]
    kept_constants = [constants[name] for name in constant_order]
    for tensor in kept_constants:
        tensor.name = renamed[tensor.name]
    del graph.node[:]
    graph.node.extend(ordered)
    del graph.initializer[:]
    graph.initializer.extend(kept_constants)
    del graph.value_info[:]
    graph.name = "pianoscribe"
    graph.doc_string = ""  # tf2onnx writes the traced function's name here, numbered per process
    for value in graph.input:
        _name_dynamic_axes(value)
    for value in graph.output:
        _name_dynamic_axes(value)


def _content_digest(tensor: onnx.TensorProto) -> str:
    """sha256 of a constant's type, shape and values, whatever its name."""
    nameless = type(tensor)()
    nameless.CopyFrom(tensor)
    nameless.name = ""
    return hashlib.sha256(nameless.SerializeToString(deterministic=True)).hexdigest()


def _name_dynamic_axes(value: onnx.ValueInfoProto) -> None:
    """``batch`` and ``time`` instead of tf2onnx's numbered ``unk__N`` for the two free axes."""
    for dimension, name in zip(value.type.tensor_type.shape.dim, ("batch", "time")):
        if not dimension.HasField("dim_value"):
            dimension.dim_param = name


# ---------------------------------------------------------------------------------------------- reading


def load_onnx(path: Path | str, threads: int = 0) -> tuple[Any, ModelInfo, str]:
    """Open an ONNX model written by ``export_onnx``: ``(onnxruntime session, ModelInfo, sha256 of its .keras)``.

    ``threads`` = 0 lets onnxruntime use one thread per physical core. Raises a one-line ``UserError`` for a
    missing, unreadable or foreign file.
    """
    import onnxruntime

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file (run `trainer fit`, or `trainer export` for a .keras file)")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings about unused initializers on stderr
    options.intra_op_num_threads = int(threads)
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own kinds for a broken or foreign file
        raise UserError(f"{path}: cannot load the ONNX model ({' '.join(str(error).split())[:200]})") from error
    metadata = session.get_modelmeta().custom_metadata_map
    if METADATA_INFO not in metadata:
        raise UserError(f"{path}: no pianoscribe model info in its metadata (not a pianoscribe model)")
    try:
        info = ModelInfo.from_dict(json.loads(metadata[METADATA_INFO]))
    except (ValueError, TypeError) as error:
        raise UserError(f"{path}: its model info cannot be read ({error})") from error
    problems = grid_problems(info)
    inputs = session.get_inputs()
    input_bins = N_BINS + int(info.long_fft_bins)
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME or inputs[0].shape[2:] != [input_bins]:
        found = [(value.name, value.shape) for value in inputs]
        problems.append(f"input is {found}, expected {INPUT_NAME} [batch, time, {input_bins}]")
    outputs = {value.name: value.shape for value in session.get_outputs()}
    missing = [head for head in HEADS if head not in outputs or outputs[head][2:] != [N_KEYS]]
    if missing:
        problems.append(f"missing heads {', '.join(missing)}")
    if problems:
        raise UserError(f"{path}: model/featurization mismatch: {'; '.join(problems)}")
    return session, info, metadata.get(METADATA_SOURCE, "")
