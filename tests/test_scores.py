"""One list of the ranking scores' names: evaluation, the model card and the seed protocol
read ``scores.RANK_KEYS``."""

from __future__ import annotations

import numpy as np

from omnireid.evaluation import metrics
from omnireid.models.card import EVAL_KEYS
from omnireid.scores import RANK_KEYS
from omnireid.tasks import seeds


def test_every_reader_of_the_rank_scores_takes_them_from_one_list() -> None:
    result = metrics.RankResult(np.linspace(0.5, 1, 20), 0.4, 0.2, 10, 0)
    assert tuple(result.as_dict()) == RANK_KEYS == ("rank1", "rank5", "rank10", "mAP", "mINP")
    assert metrics.RANK_KEYS is RANK_KEYS and EVAL_KEYS[: len(RANK_KEYS)] == RANK_KEYS
    assert seeds.KEYS == ("rank1", "rank5", "mAP")  # the TPAMI search table's columns
