"""optuna-dashboard (the `dashboard` extra, installed by `make setup`) reads an exploration's journal: started on a
small study in the journal storage the explorations write, on a free localhost port, its HTTP API gives the study
and its trials."""

import json
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest

from roadmap.explore.study import journal_storage

from helpers import free_port

pytest.importorskip("optuna_dashboard", reason="the dashboard extra is not installed (pip install -e '.[dashboard]')")


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_optuna_dashboard_serves_an_explorations_journal(tmp_path):
    journal = tmp_path / "explore" / "widths.journal"
    journal.parent.mkdir()
    study = optuna.create_study(study_name="widths", storage=journal_storage(journal), direction="maximize")
    for top1 in (71.5, 74.25, 73.0):
        trial = study.ask()
        trial.suggest_int("width", 32, 256)
        study.tell(trial, top1)
    port = free_port()
    cli = "import sys; from optuna_dashboard._cli import main; sys.exit(main())"
    server = subprocess.Popen([sys.executable, "-c", cli, str(journal), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while True:
            try:
                studies = get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read().decode()[-2000:]
                time.sleep(0.2)
        assert [(s["study_name"], s["directions"]) for s in studies] == [("widths", ["maximize"])]
        detail = get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}")
        assert detail["name"] == "widths"
        assert [t["values"] for t in detail["trials"]] == [[71.5], [74.25], [73.0]]
        assert [t["state"] for t in detail["trials"]] == ["Complete"] * 3
        assert [t["values"] for t in detail["best_trials"]] == [[74.25]]
    finally:
        server.terminate()
        server.wait(timeout=30)
