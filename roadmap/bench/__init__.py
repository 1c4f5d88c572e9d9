"""Benchmarks: `python -m roadmap.bench` (core) and its modes: loaders, profiling, variants; per-step
complexity (complexity)."""
