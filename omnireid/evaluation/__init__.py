"""Evaluation: features, distances, ranking metrics (CMC, mAP, mINP), re-ranking."""
