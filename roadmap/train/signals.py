"""Signals: how SIGINT (Ctrl-C) and SIGTERM (a scheduler) stop a run cleanly. A signal during an epoch becomes
`Interrupted` (its one line says where and how to resume); while an epoch's files are written it waits
(`deferred_interrupts`), so the metrics line, the checkpoint and the history stay in step."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM (a scheduler): its one line says where and how to resume."""

    def __init__(self, message: str, signal_name: str):
        super().__init__(message)
        self.exit_code = 143 if signal_name == "SIGTERM" else 130  # 128 + the signal's number, as shells report


def sigterm_interrupts() -> None:
    """Let SIGTERM stop a run as Ctrl-C does (KeyboardInterrupt in the main thread), where nothing else handles it
    (submitit's jobs keep their own handler, which requeues them)."""

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, handler)


@contextmanager
def deferred_interrupts():
    """SIGINT and SIGTERM wait until the block is done (an epoch's metrics line, checkpoint and history stay in step),
    then stop the run as they would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signal.Signals(signum).name))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if caught:
        raise KeyboardInterrupt(*([] if caught[0] == "SIGINT" else [caught[0]]))
