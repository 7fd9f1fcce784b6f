"""Benchmarks: this project vs the seed tutorial's code, side by side."""
