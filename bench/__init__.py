"""Benchmarks: each prints its figures as ratios to a no-op baseline measured in the same run."""
