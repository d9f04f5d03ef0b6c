"""Sentiment scores, the per-party trend, and the shipped classifier head's file."""

import numpy as np
import pytest

from coaching.sentiment import (
    EmbeddingSentiment,
    SentimentModelUnavailable,
    SentimentTrend,
    VaderSentiment,
    default_model,
    label_of,
    load_model,
)


def test_vader_with_sales_terms_reads_sales_objections_as_negative():
    model = default_model()
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


def test_shipped_head_is_a_three_class_logistic_regression_on_minilm_embeddings():
    with np.load(EmbeddingSentiment.HEAD_PATH) as head:
        assert head["weights"].shape == (384, 3) and head["bias"].shape == (3,)
        assert tuple(head["labels"]) == ("negative", "neutral", "positive")
        assert "CrowdFlower" in str(head["corpus"])
        assert np.isfinite(head["weights"]).all()


def test_embedding_model_scores_when_the_extra_is_installed():
    pytest.importorskip("sentence_transformers")
    model = EmbeddingSentiment()
    assert model.score("I love this, it's wonderful") > 0 > model.score("this is awful, I hate it")


def test_models_by_name():
    assert load_model("vader") is default_model()
    with pytest.raises(ValueError, match="unknown sentiment model"):
        load_model("magic")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(SentimentModelUnavailable, match="sentiment-model"):
            load_model("minilm")
