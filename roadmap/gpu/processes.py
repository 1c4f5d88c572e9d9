"""A command run with a time limit that stops all of it: the command's whole process group, its children included
(a sweep's run.py, pytest's subprocesses), first with SIGTERM (runs record where they were), then SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 10.0  # between SIGTERM and SIGKILL


def bounded(name: str, cmd: list[str], limit: float, *, echo: bool = False, env: dict | None = None) -> dict:
    """Run `cmd` from the repository root in a process group of its own for at most `limit` seconds. Returns
    {stage, code (the exit code, or why it was stopped), seconds, output (stdout and stderr), tail}; with `echo`,
    its lines are printed as they come."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print(line, end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=max(0.0, limit))
    except subprocess.TimeoutExpired:
        stop(proc)
        code = f"stopped at its limit of {limit:.0f} s"
    reader.join(timeout=5)
    output = "".join(lines)
    return {"stage": name, "code": code, "seconds": time.perf_counter() - t0, "output": output,
            "tail": "\n".join(output.strip().splitlines()[-12:])}


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group, SIGKILL to what is left of it after GRACE_SECONDS."""
    for sig, wait in ((signal.SIGTERM, GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:  # the leader is gone; its children may not be
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        break
