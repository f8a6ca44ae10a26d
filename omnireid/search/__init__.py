"""Architecture search of instance-normalisation placements (TPAMI'21): ``run_search``."""
