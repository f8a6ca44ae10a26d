"""The names of the ranking scores an evaluation reports and a run records (``log.jsonl``,
``metrics.json``, a zoo card): one list that evaluation, the model card and the seed protocol
all read."""

from __future__ import annotations

CMC_RANKS = (1, 5, 10)  # the ranks every report shows
RANK_KEYS = (*(f"rank{k}" for k in CMC_RANKS), "mAP", "mINP")  # RankResult.as_dict's keys
