"""Evaluation stages: model comparison and figures, uncertainty calibration, emission lines,
the MZR test, the leaderboard, benchmarks."""
