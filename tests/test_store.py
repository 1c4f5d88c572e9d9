"""The run store: the one place that knows where runs live and how their files are read and written."""

import json

import pytest

from roadmap import record, store
from roadmap.errors import ConfigError
from roadmap.kinds import KINDS


def test_layout_of_every_kind_and_back(tmp_path):
    group = store.group_dir(tmp_path, "embedded", "convnext_t")
    assert group == tmp_path / "embedded" / "convnext_t"
    for kind in KINDS:
        run = store.run_dir(tmp_path, "embedded", "convnext_t", kind, "gelu", 2)
        assert run == (group if kind == "roadmap" else group / kind) / "gelu" / "seed2"
        assert store.group_of(run, kind) == group and store.kind_of_path(run) == kind
    with pytest.raises(ConfigError, match="^kind='ablated': must be one of roadmap, isolated, leave_one_out, explore$"):
        store.run_dir(tmp_path, "embedded", "convnext_t", "ablated", "gelu", 0)


def test_summaries_written_before_the_store_read_with_their_kind(tmp_path):
    group = tmp_path / "embedded" / "convnext_t"
    cases = {group / "gelu" / "seed0": ({"ablation": None}, "roadmap"),
             group / "isolated" / "gelu" / "seed0": ({"ablation": "isolated"}, "isolated"),
             group / "explore" / "net-1" / "seed0": ({"ablation": "explore"}, "explore"),
             group / "leave_one_out" / "gelu" / "seed0": ({}, "leave_one_out"),  # a failed run's: no field at all
             group / "kernel_7" / "seed1": ({"kind": "roadmap", "roadmap": "convnext_t", "scale": "embedded"},
                                            "roadmap"),
             group / "kernel_9" / "seed0": ({"regime": "convnext_t"}, "roadmap")}  # before roadmaps were configs
    for run, (fields, _) in cases.items():
        run.mkdir(parents=True)
        store.write_summary(run, {"step": run.parent.name, "status": "done", **fields})
    (group / "broken" / "seed0").mkdir(parents=True)
    (group / "broken" / "seed0" / "summary.json").write_text("{cut")
    with pytest.warns(UserWarning, match="broken/seed0/summary.json: unreadable summary"):
        found = dict(store.summaries(tmp_path))
    assert {run: s["kind"] for run, s in found.items()} == {run: kind for run, (_, kind) in cases.items()}
    assert all("ablation" not in s and "regime" not in s for s in found.values())
    assert {run.parent.name: (s["roadmap"], s["scale"]) for run, s in found.items() if "kernel" in str(run)} == {
        "kernel_7": ("convnext_t", "embedded"), "kernel_9": ("convnext_t", "unknown")}
    others = {(s["roadmap"], s["scale"]) for run, s in found.items() if "kernel" not in str(run)}
    assert others == {("unknown", "unknown")}
    assert store.read_summary(group / "gelu" / "seed0")["kind"] == "roadmap"
    assert store.read_summary(group / "missing" / "seed0") is None


def test_roadmap_json_in_the_group_or_where_older_runs_wrote_it(tmp_path):
    run = tmp_path / "embedded" / "convnext_t" / "isolated" / "gelu" / "seed0"
    run.mkdir(parents=True)
    assert store.read_roadmap(run, "isolated") is None
    (run.parents[1] / "roadmap.json").write_text(json.dumps({"name": "old"}))  # in the kind's folder, as before
    assert store.read_roadmap(run, "isolated") == {"name": "old"}
    store.write_roadmap(run, "isolated", {"name": "new"})
    assert (tmp_path / "embedded" / "convnext_t" / "roadmap.json").exists()
    assert store.read_roadmap(run, "isolated") == {"name": "new"}


def test_records_and_metrics_stop_at_a_line_cut_by_a_kill(tmp_path):
    run = tmp_path / "embedded" / "convnext_t" / "isolated" / "gelu" / "seed0"
    store.record(run, "isolated", {"step": "gelu", "reason": "invalid"})
    store.record(run, "isolated", {"step": "kernel_7", "reason": "invalid"})
    with open(run.parents[1] / "invalid.jsonl", "a") as f:
        f.write('{"step": "kern')  # a record cut by a kill
    assert [r["step"] for r in store.records(run.parents[1], "isolated")] == ["gelu", "kernel_7"]
    run.mkdir(parents=True)
    store.write_metrics(run, [{"epoch": 1}])
    store.append_metrics(run, {"epoch": 2})
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "val_')
    assert [m["epoch"] for m in store.read_metrics(run)] == [1, 2]
    assert list(run.iterdir()) == [run / "metrics.jsonl"]  # no temporary file left


def test_runs_side_by_side_each_claim_a_gpu_of_their_own(tmp_path):
    """Three processes on a machine of two GPUs (the claim only counts them): two take one each, the third says it
    waits and takes the first one given back."""
    import subprocess
    import sys
    import time

    code = ("import sys, time; from roadmap import store; i, held = store.claim_gpu(sys.argv[1], 2, poll=0.1); "
            "print('gpu', i, flush=True); time.sleep(float(sys.argv[2]))")
    first = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), hold], stdout=subprocess.PIPE, text=True)
             for hold in ("3", "60")]
    gpus = [p.stdout.readline().split()[1] for p in first]
    assert sorted(gpus) == ["0", "1"] and sorted(f.name for f in (tmp_path / ".gpus").iterdir()) == ["cuda0.lock",
                                                                                             "cuda1.lock"]
    start = time.time()
    third = subprocess.run([sys.executable, "-c", code, str(tmp_path), "0"], capture_output=True, text=True,
                           timeout=60)
    lines = third.stdout.splitlines()
    assert lines == [f"all 2 GPUs are held by other runs under {tmp_path}: waiting for one", f"gpu {gpus[0]}"]
    assert time.time() - start > 1  # it waited for it
    assert first[0].wait(timeout=10) == 0 and first[1].poll() is None  # it took the GPU the first gave back
    first[1].kill()
    first[1].wait()


def test_a_failure_record_never_replaces_a_finished_or_resumable_run(tmp_path):
    """A sweep's job that fails (a bad setting, another configuration in the run's folder) is recorded as failed,
    but never over a run that finished or can resume: that summary and its last.pt are what the user has."""
    for status in ("done", "diverged", "interrupted"):
        run = tmp_path / status
        run.mkdir()
        store.write_summary(run, {"step": "gelu", "status": status, "final_top1": 80.0})
        store.write_failure(run, {"step": "gelu", "message": "ConfigError: another configuration"})
        assert store.read_summary(run)["status"] == status and store.read_summary(run)["final_top1"] == 80.0
    failed = tmp_path / "failed"
    failed.mkdir()
    store.write_summary(failed, {"step": "gelu", "status": "failed", "message": "old"})
    store.write_failure(failed, {"step": "gelu", "message": "new"})
    assert store.read_summary(failed)["message"] == "new"
    store.write_failure(tmp_path / "absent", {"step": "gelu", "message": "x"})
    assert not (tmp_path / "absent").exists()  # only where the run's folder exists, unless asked to make it
    store.write_failure(tmp_path / "made", {"step": "gelu", "message": "x"}, create=True)
    assert store.read_summary(tmp_path / "made")["status"] == "failed"


def test_summaries_skip_the_stores_hidden_folders_and_what_is_no_run(tmp_path):
    """A summary under .multirun, .gpus or a run's .replacing (a run staged to replace it) is not a run of its own;
    nor is one whose step or status is not a text (the report groups and names runs by them)."""
    run = tmp_path / "embedded" / "convnext_t" / "gelu" / "seed0"
    for folder in (run, run / ".replacing", tmp_path / ".multirun" / "0"):
        folder.mkdir(parents=True, exist_ok=True)
        store.write_summary(folder, {"step": "gelu", "status": "done"})
    assert [path for path, _ in store.summaries(tmp_path)] == [run]
    assert [path for path, _ in store.summaries(str(run))] == [run]
    odd = tmp_path / "embedded" / "convnext_t" / "12" / "seed0"
    odd.mkdir(parents=True)
    store.write_summary(odd, {"step": 12, "status": "done"})
    with pytest.warns(UserWarning, match=r"skipping .*/12/seed0/summary.json: unreadable summary \(not a run summary: "
                                         r"no step and status as texts\)"):
        assert [path for path, _ in store.summaries(tmp_path)] == [run]


def test_the_reports_columns_are_fields_of_the_run_record():
    assert sorted((record.DEFAULTS.keys() | set(record.NUMBERS)) - set(record.FIELDS)) == []


@pytest.mark.parametrize("damage, why", [
    ({"kind": "nope"}, "kind 'nope' is none of roadmap, isolated, leave_one_out, explore"),
    ({"roadmap": None, "scale": 5}, "its roadmap, scale are not text"),
    ({"dataset": ["x"]}, "its dataset is not text"),
    ({"label": 3}, "its label is not text"),
])
def test_summaries_skip_one_whose_kind_or_texts_are_not_a_runs(tmp_path, damage, why):
    """A summary whose kind is none of the kinds, or whose texts (scale, roadmap, dataset, label, ...) hold something
    else, is skipped with a warning: the report groups, titles and names runs by them (it raised a traceback)."""
    good, bad = (tmp_path / "embedded" / "convnext_t" / step / "seed0" for step in ("gelu", "widen"))
    for run in (good, bad):
        run.mkdir(parents=True)
    summary = {"step": "gelu", "status": "done", "kind": "roadmap", "scale": "embedded", "roadmap": "convnext_t",
               "dataset": "synthetic", "label": "GELU", "parent": None}
    store.write_summary(good, summary)
    store.write_summary(bad, {**summary, "step": "widen", **damage})
    with pytest.warns(UserWarning) as warned:
        assert [path for path, _ in store.summaries(tmp_path)] == [good]
    assert [str(w.message) for w in warned] == [f"skipping {bad}/summary.json: unreadable summary (not a run summary: "
                                                f"{why})"]


def test_summaries_follow_linked_folders_once(tmp_path):
    """Runs linked into the runs folder (from another disk) are found (Path.rglob did not follow the link: the report
    said there were none, or left them out without a word); a link back up is no loop."""
    elsewhere = tmp_path / "disk" / "convnext_t" / "gelu" / "seed0"
    elsewhere.mkdir(parents=True)
    store.write_summary(elsewhere, {"step": "gelu", "status": "done"})
    runs = tmp_path / "runs" / "embedded"
    runs.mkdir(parents=True)
    (runs / "convnext_t").symlink_to(tmp_path / "disk" / "convnext_t")
    (runs / "convnext_t" / "gelu" / "up").symlink_to(tmp_path / "runs")
    assert [path for path, _ in store.summaries(tmp_path / "runs")] == [runs / "convnext_t" / "gelu" / "seed0"]


def test_an_empty_root_is_no_folder_to_write_in(tmp_path):
    """A multirun with runs_root= (an unset shell variable) had Hydra make its sweep folder /.multirun."""
    with pytest.raises(ConfigError, match=r"^runs_root='': must be a folder's path \(runs_root=. for the current "
                                          r"folder\)$"):
        store.check_writable("", "/.multirun")


def test_lines_that_are_no_record_are_not_read_as_one(tmp_path):
    """A damaged invalid.jsonl (a line that is JSON but no object, or an object without a step and a reason) was a
    TypeError/KeyError traceback in the ablation's report; a metrics line that is no object broke the notebook's
    learning curves."""
    run = tmp_path / "embedded" / "convnext_t" / "isolated" / "gelu" / "seed0"
    store.record(run, "isolated", {"step": "gelu", "reason": "invalid"})
    store.record(run, "isolated", {"x": 1})
    store.record(run, "isolated", {"step": "widen", "reason": "invalid"})
    with pytest.warns(UserWarning) as warned:
        assert [r["step"] for r in store.records(run.parents[1], "isolated")] == ["gelu", "widen"]
    assert [str(w.message) for w in warned] == [f"skipping 1 line(s) of {run.parents[1] / 'invalid.jsonl'}: not a "
                                                f"step and a reason as texts"]
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n[1, 2]\n{"epoch": 2}\n')
    assert store.read_metrics(run) == [{"epoch": 1}]
