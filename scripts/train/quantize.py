"""
Static int8 quantization of a vemscope U-Net (ONNX), driven by `vemscope quantize` (server/pipeline/segment/quantize.ts).

  quantize.py probe IN.onnx OUT.onnx        copy of IN whose graph also outputs every tensor that gets quantized;
                                            prints their names as JSON (the calibration runs them in onnxruntime)
  quantize.py qdq IN.onnx RANGES.json OUT.onnx
                                            QDQ copy of IN: weights int8 per output channel, activations uint8 per
                                            tensor with the calibrated [min, max] of RANGES.json

Written here rather than taken from onnxruntime.quantization because that Python package is not installable on
these machines (PyPI unreachable; Debian ships python3-onnx only). The layout follows onnxruntime's QDQ format so
that its graph optimiser fuses each DequantizeLinear -> Conv -> (Relu) -> QuantizeLinear into one QLinearConv:
- every Relu output gets QuantizeLinear -> DequantizeLinear right after it (zero point 0: the Relu then folds into
  the quantization), and every other Conv input (the image, pooled and concatenated tensors) before its Conv;
- weights are symmetric int8 per output channel on 7 bits ([-63, 63]): x86 CPUs without VNNI multiply u8 x s8 pairs
  with 16-bit saturating sums (vpmaddubsw), which 7-bit weights never overflow;
- biases are int32 at scale (input scale x weight scale), as QLinearConv takes them;
- upsampling (Resize) keeps its input's scale and zero point, so the skip-connection Concats read two DQ outputs and
  run on uint8 (QLinearConcat); its run-time output size becomes a constant scale of 2 (constant_upsampling);
- the last Conv (the 1x1 head to class logits) stays float, followed by a softmax over the classes written out as
  max / subtract / exp / sum / divide (output 'probabilities').
Model metadata (the "vemscope" entry: classes, normalisation, thresholds, card) is kept as it is.
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WEIGHT_LEVELS = 63


def quantized_tensors(graph):
    """Relu outputs, then the inputs of every Conv but the head that are not Relu outputs, in graph order."""
    names = [n.output[0] for n in graph.node if n.op_type == "Relu"]
    convs = [n for n in graph.node if n.op_type == "Conv"]
    for n in convs[:-1]:
        if n.input[0] not in names:
            names.append(n.input[0])
    return names


def probe(src, dst):
    m = onnx.load(src)
    names = quantized_tensors(m.graph)
    present = {o.name for o in m.graph.output} | {i.name for i in m.graph.input}
    for name in names:
        if name not in present:
            m.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    onnx.save(m, dst)
    print(json.dumps(names))


def activation_params(lo, hi):
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    scale = (hi - lo) / 255.0
    return np.float32(scale), np.uint8(min(255, max(0, round(-lo / scale))))


def constant_upsampling(g, added_inits):
    """unet.py upsamples to the skip tensor's size, which the export computes at run time (Shape, Gather, Concat...).
    The engine feeds only sizes that are multiples of the model's size multiple, so every upsampling doubles: a
    constant scale of 2 gives the same coordinates and bytes. With it onnxruntime keeps the whole graph in its NHWC
    layout (session 10: the dynamic form left 12 layout transposes and 3 extra dequantizations of the largest
    tensors); the size chains become dead and are dropped with the other unused nodes."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "upsample_scales_2x")
    resizes = [n for n in g.node if n.op_type == "Resize" and len(n.input) == 4 and n.input[3]]
    if resizes:
        added_inits.append(scales)
    for n in resizes:
        x = n.input[0]
        del n.input[:]
        n.input.extend([x, "", scales.name])


def qdq(src, ranges_path, dst):
    m = onnx.load(src)
    g = m.graph
    ranges = json.load(open(ranges_path))
    inits = {i.name: i for i in g.initializer}
    added_inits, added_nodes = [], []
    dq_of = {}  # tensor -> (its DequantizeLinear output, scale)

    def quantize_activation(name):
        if name not in dq_of:
            if name not in ranges:
                raise SystemExit(f"{ranges_path}: no calibrated range for tensor '{name}'")
            scale, zp = activation_params(*ranges[name])
            s = numpy_helper.from_array(np.array(scale, np.float32), f"{name}_scale")
            z = numpy_helper.from_array(np.array(zp, np.uint8), f"{name}_zero")
            added_inits.extend([s, z])
            added_nodes.append(helper.make_node("QuantizeLinear", [name, s.name, z.name], [f"{name}_q"]))
            added_nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", s.name, z.name], [f"{name}_dq"]))
            dq_of[name] = (f"{name}_dq", float(scale))
        return dq_of[name]

    constant_upsampling(g, added_inits)
    relus = [n.output[0] for n in g.node if n.op_type == "Relu"]
    for name in relus:
        quantize_activation(name)
    # Upsampling keeps its input's quantization (onnxruntime then resizes the uint8 tensor itself), so both inputs
    # of each skip-connection Concat come from a DequantizeLinear and it becomes a QLinearConcat.
    for n in g.node:
        if n.op_type == "Resize" and n.input[0] in dq_of:
            src, out = n.input[0], n.output[0]
            added_nodes.append(helper.make_node("QuantizeLinear", [out, f"{src}_scale", f"{src}_zero"], [f"{out}_q"]))
            added_nodes.append(helper.make_node("DequantizeLinear", [f"{out}_q", f"{src}_scale", f"{src}_zero"], [f"{out}_dq"]))
            dq_of[out] = (f"{out}_dq", dq_of[src][1])
    passed_on = set(relus) | {n.output[0] for n in g.node if n.op_type == "Resize" and n.output[0] in dq_of}
    convs = [n for n in g.node if n.op_type == "Conv"]
    for n in g.node:
        if n.op_type == "Conv" and n is not convs[-1]:
            x, w, b = n.input[0], n.input[1], n.input[2]
            xdq, sx = quantize_activation(x)
            W = numpy_helper.to_array(inits[w]).astype(np.float32)
            B = numpy_helper.to_array(inits[b]).astype(np.float32)
            sw = np.maximum(np.abs(W).reshape(W.shape[0], -1).max(axis=1), 1e-12) / WEIGHT_LEVELS
            Wq = np.clip(np.round(W / sw.reshape(-1, 1, 1, 1)), -WEIGHT_LEVELS, WEIGHT_LEVELS).astype(np.int8)
            sb = (sx * sw).astype(np.float32)
            Bq = np.round(B / sb).astype(np.int32)
            for arr, name in ((Wq, f"{w}_q"), (sw.astype(np.float32), f"{w}_scale"), (np.zeros(len(sw), np.int8), f"{w}_zero"),
                              (Bq, f"{b}_q"), (sb, f"{b}_scale"), (np.zeros(len(sw), np.int32), f"{b}_zero")):
                added_inits.append(numpy_helper.from_array(arr, name))
            added_nodes.append(helper.make_node("DequantizeLinear", [f"{w}_q", f"{w}_scale", f"{w}_zero"], [f"{w}_dq"], axis=0))
            added_nodes.append(helper.make_node("DequantizeLinear", [f"{b}_q", f"{b}_scale", f"{b}_zero"], [f"{b}_dq"], axis=0))
            n.input[0], n.input[1], n.input[2] = xdq, f"{w}_dq", f"{b}_dq"
        else:
            # Every other reader of a quantized Relu output (pooling, resizing, concatenation) reads its DQ.
            for k, i in enumerate(n.input):
                if i in passed_on:
                    n.input[k] = dq_of[i][0]

    # The graph ends in a softmax over the classes: the JavaScript one it replaces was a fifth of a tile's CPU time
    # (the caller marks the metadata's "output" as "probabilities").
    # Written out (max, subtract, exp, sum, divide over the class axis): onnxruntime's Softmax on axis 1 of NCHW runs
    # row by row over 7 values and cost as much as the JavaScript one; these are vectorised over the pixels.
    logits = g.output[0]
    axes = numpy_helper.from_array(np.array([1], np.int64), "softmax_axes")
    added_inits.append(axes)
    added_nodes.append(helper.make_node("ReduceMax", [logits.name], ["softmax_max"], axes=[1], keepdims=1))
    added_nodes.append(helper.make_node("Sub", [logits.name, "softmax_max"], ["softmax_shifted"]))
    added_nodes.append(helper.make_node("Exp", ["softmax_shifted"], ["softmax_exp"]))
    added_nodes.append(helper.make_node("ReduceSum", ["softmax_exp", axes.name], ["softmax_sum"], keepdims=1))
    added_nodes.append(helper.make_node("Div", ["softmax_exp", "softmax_sum"], ["probabilities"]))
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, None)
    probs.type.CopyFrom(logits.type)
    g.output.remove(logits)
    g.output.insert(0, probs)

    # Topological order of the old and new nodes (a Q/DQ pair goes right after its tensor is made).
    nodes = list(g.node) + added_nodes
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {i.name for i in added_inits} | {""}
    ordered = []
    while nodes:
        left = [n for n in nodes if not all(i in ready for i in n.input)]
        step = [n for n in nodes if all(i in ready for i in n.input)]
        if not step:
            raise SystemExit(f"{src}: graph has a cycle after inserting Q/DQ nodes")
        for n in step:
            ready.update(n.output)
        ordered.extend(step)
        nodes = left
    # Nodes nothing reads any more (the upsampling's size chains), peeled off until none is left.
    while True:
        read = {i for n in ordered for i in n.input} | {o.name for o in g.output}
        live = [n for n in ordered if any(o in read for o in n.output)]
        if len(live) == len(ordered):
            break
        ordered = live
    used = {i for n in ordered for i in n.input}
    kept = [i for i in list(g.initializer) + added_inits if i.name in used]
    del g.node[:]
    g.node.extend(ordered)
    del g.initializer[:]
    g.initializer.extend(kept)
    onnx.checker.check_model(m)
    onnx.save(m, dst)
    print(json.dumps({"quantized_tensors": len(dq_of), "quantized_convs": len(convs) - 1}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "probe":
        probe(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "qdq":
        qdq(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
