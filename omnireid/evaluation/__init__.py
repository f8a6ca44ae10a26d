"""Evaluation: features, distances, ranking metrics (CMC, mAP, mINP), re-ranking, verification
thresholds and attribute metrics."""
