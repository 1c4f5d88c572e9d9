"""Run kinds are one registry (roadmap.kinds): a new kind is one entry, and the run store, the settings, the
network a run trains and the report follow it without a change anywhere else."""

import json

from test_report import fake_ablation

from roadmap import kinds, store
from roadmap.config import compose, model_config, validate
from roadmap.report import build as report

HALFWAY = kinds.Kind("halfway", network="ablated", report="ablation", title=" — halfway ablation", files="_halfway",
                     folder="halfway", start="baseline", records="invalid.jsonl",
                     change_versus="the halfway reference (the first row)")


def test_a_new_kind_is_one_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(kinds.KINDS, "halfway", HALFWAY)
    run = store.run_dir(tmp_path, "embedded", "convnext_t", "halfway", "gelu", 1)
    assert run == tmp_path / "embedded" / "convnext_t" / "halfway" / "gelu" / "seed1"
    assert store.kind_of_path(run) == "halfway" and store.group_of(run, "halfway") == run.parents[2]

    cfg = compose(["+step=gelu", "kind=halfway", f"runs_root={tmp_path}"])
    assert validate(cfg).kind == "halfway" and cfg.run_dir == str(run.with_name("seed0"))
    isolated = model_config(compose(["+step=gelu", "kind=isolated"]))
    assert model_config(cfg) == isolated != model_config(compose(["+step=gelu"]))  # its start: the baseline

    folder = fake_ablation(tmp_path / "runs", "isolated").rename(tmp_path / "runs" / "embedded" / "convnext_t" /
                                                                 "halfway")
    for path in folder.rglob("summary.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "ablation": "halfway"}))
    assert report.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "results.md").read_text()
    assert [line for line in md.splitlines() if line.startswith("## ")] == [
        "## Modernizing a ConvNet: ResNet-50 → ConvNeXt-T: embedded scale — halfway ablation"]
    assert "Change: versus the halfway reference (the first row), the mean of per-seed differences" in md
    assert sorted(p.name for p in (tmp_path / "out").glob("*halfway*.png")) == ["roadmap_halfway.png"]
