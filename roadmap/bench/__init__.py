"""Benchmarks: `python -m roadmap.bench` (cli) and its modes: the networks (networks), the data loaders (loaders), where
the training step's time goes (profiling), the step's speed variants (variants); the toolkit they share: timing (device,
clock, Timer), throughput (one model's img/s, and its GPU memory), memory (a network's training step's peak resident
memory, in a process of its own), trainer_step (the trainer's step); per-step complexity (complexity)."""
