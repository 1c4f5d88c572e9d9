"""The GPU path's commands: the first-run check (check), the GPU roadmap (roadmap), the offline kit (kit), bounded
child processes (processes)."""
