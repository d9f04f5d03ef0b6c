"""What lead scoring and deal prediction need from a model, whichever family it is.

Two families implement it: the shipped logistic regressions
(``crm_core.scoring.logistic_model.LogisticModel``) and organisations' own
gradient-boosted trees (``crm_core.scoring.boosted_trees.BoostedTrees``). Rows of
``scoring_models`` say which one they hold in their ``format`` column.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from crm_core.scoring.boosted_trees import FORMAT as TREES_FORMAT
from crm_core.scoring.boosted_trees import BoostedTrees
from crm_core.scoring.logistic_model import LogisticModel

LOGISTIC_FORMAT = "logistic-v1"
FORMATS = (LOGISTIC_FORMAT, TREES_FORMAT)


class ScoringModel(Protocol):
    @property
    def version(self) -> str: ...

    def probability(self, x: np.ndarray) -> np.ndarray: ...

    def group_effects(self, x: np.ndarray, groups: dict[str, list[int]]) -> dict[str, float]: ...


def model_of(format: str, data: dict[str, Any], features: tuple[str, ...]) -> ScoringModel:
    """Read a stored model; raises ``ModelFileError`` / ``TreeModelError`` (both ``ValueError``)."""
    if format == TREES_FORMAT:
        return BoostedTrees.from_json(data, features)
    if format == LOGISTIC_FORMAT:
        return LogisticModel.from_json(data, features)
    raise ValueError(f"unknown model format {format!r}")
