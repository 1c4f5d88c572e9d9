"""Reference networks trained alike (Swin-T, Swin-B): configuration, cost, training and the report's comparison."""

import json

import pandas as pd
import pytest
import torch
import torchvision

import roadmap
from roadmap.report import build as report
from roadmap.config import compose, model_config
from roadmap.errors import ConfigError
from roadmap.nets.model import gmacs, num_params
from roadmap.nets.swin import ReferenceConfig

from helpers import TINY, run_here, summary, table_rows
from test_report import fake_runs


@pytest.mark.parametrize("name, torchvision_model", [("swin_t", "swin_t"), ("swin_b", "swin_b")])
def test_reference_at_full_width_is_torchvisions_network(name, torchvision_model):
    cfg = compose([f"+reference={name}", "model.width_multiplier=1", "data.resolution=224",
                   "data.num_classes=1000", f"roadmap=convnext_{name[-1]}"])
    reference = model_config(cfg)
    assert isinstance(reference, ReferenceConfig) and reference.window == 7
    ours, theirs = reference.build(), getattr(torchvision.models, torchvision_model)()
    assert num_params(ours) == num_params(theirs) == {"swin_t": 28_288_354, "swin_b": 87_768_224}[name]
    assert gmacs(ours) == pytest.approx(gmacs(theirs), rel=1e-9)
    assert gmacs(ours) == pytest.approx({"swin_t": 4.49, "swin_b": 15.43}[name], abs=0.005)
    assert [k for k in ours.state_dict()] == [k for k in theirs.state_dict()]


def test_the_scale_sets_width_heads_and_window():
    def swin(**kw):
        return ReferenceConfig(arch="swin", embed_dim=96, depths=(2, 2, 6, 2), **kw)

    embedded = swin(resolution=32, width_multiplier=0.125)
    assert embedded.widths == [12, 24, 48, 96] and embedded.heads == [1, 1, 2, 3] and embedded.window == 2
    assert swin().heads == [3, 6, 12, 24] and swin().window == 7
    assert swin(resolution=160).window == 5 and swin(resolution=128).window == 4
    assert swin(resolution=32, window_size=4).window == 4
    assert swin(resolution=32, width_multiplier=0.125).build()(torch.zeros(2, 3, 32, 32)).shape == (2, 1000)
    with pytest.raises(ConfigError, match=r"reference.window_size='big': must be an integer >= 1 or auto"):
        swin(window_size="big")
    with pytest.raises(ConfigError, match="reference.patch_size=5: must divide data.resolution=32"):
        swin(resolution=32, patch_size=5)
    with pytest.raises(ConfigError, match="reference.heads: unknown key"):
        ReferenceConfig.from_dict({"arch": "swin", "embed_dim": 96, "depths": [2], "heads": [3]})


def test_a_reference_trains_resumes_and_is_reported_beside_the_steps(tmp_path, capsys):
    args = ["+reference=swin_t", *TINY]
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0, err
    run_dir = tmp_path / "embedded/convnext_t/swin_t/seed0"  # beside the steps' runs
    s = summary(run_dir)
    assert s["status"] == "done" and s["section"] == "reference" and s["label"] == "Swin-T"
    assert s["parent"] == "separate_downsampling" and s["paper_top1"] == 81.3 and s["switches"] is None
    assert s["reference"]["heads"] == [1, 1, 2, 3] and s["reference"]["window"] == 2 and s["epochs"] == 2
    assert set(s["robustness"]["top1"]) and s["gmacs"] > 0
    assert "[swin_t] 0.4" in out and "M params" in out

    code, out, _ = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "[swin_t] already finished (done)" in out
    (run_dir / "summary.json").unlink()  # killed after its last checkpoint, before the summary
    code, out, err = run_here(*args, runs_root=tmp_path, capsys=capsys)
    assert code == 0 and "[swin_t] resumed after epoch 2/2" in out, err
    assert summary(run_dir)["final_top1"] == s["final_top1"]
    assert summary(run_dir)["robustness"]["top1"] == s["robustness"]["top1"]

    code, _, err = run_here("+step=resnet50", *TINY, runs_root=tmp_path, capsys=capsys)
    assert code == 0, err
    report.report(tmp_path / "embedded/convnext_t", tmp_path / "out")
    steps = pd.read_csv(tmp_path / "out" / "steps.csv").set_index("step")
    assert steps.loc["swin_t", "section"] == "reference" and steps.loc["swin_t", "seeds"] == 1
    assert "swin_t" not in json.loads((tmp_path / "out" / "agreement.json").read_text())["steps"]

    code, _, err = run_here("+reference=swin_t", "kind=isolated", *TINY, runs_root=tmp_path, capsys=capsys)
    assert code == 2 and "+reference=swin_t trains a reference network beside a roadmap's steps" in err


def test_report_compares_the_endpoint_with_the_reference_by_seed(tmp_path):
    runs_dir = tmp_path / "runs"
    rm = roadmap.load_roadmap("convnext_t")
    shift = [0.0, 1.5, -1.0]  # seed noise, shared by every network of a seed
    fake_runs(runs_dir, effect=lambda s, k: 80.0 + 0.2 * s.order + shift[k])
    endpoint = {k: 80.0 + 0.2 * rm.step("separate_downsampling").order + shift[k] for k in range(3)}
    gap = [0.9, 1.1, 1.0]  # the endpoint beats Swin-T by about a point on every seed
    for k in range(3):
        d = runs_dir / "embedded/convnext_t/swin_t" / f"seed{k}"
        d.mkdir(parents=True)
        d.joinpath("summary.json").write_text(json.dumps({
            "step": "swin_t", "parent": "separate_downsampling", "order": None, "label": "Swin-T",
            "section": "reference", "adopted": True, "roadmap": "convnext_t", "scale": "embedded", "seed": k,
            "dataset": "fashion_mnist", "status": "done", "params": 2000, "gmacs": 0.05, "img_s": 500.0,
            "paper_top1": 81.3, "paper_gmacs": 4.5, "final_top1": endpoint[k] - gap[k], "kind": "roadmap"}))
    written = report.report(runs_dir, tmp_path / "out")
    agree = json.loads((tmp_path / "out" / "agreement.json").read_text())["references"]["swin_t"]
    assert agree["compared_to"] == "separate_downsampling" and agree["pairs"] == 3
    assert agree["change"] == pytest.approx(1.0) and agree["verdict"] == "helps"
    assert 0 < agree["change_ci_low"] < 1.0 < agree["change_ci_high"]  # pairing removes the ±1.5 seed noise
    assert agree["paper_change"] == pytest.approx(81.97 - 81.3)
    md = (tmp_path / "out" / "results.md").read_text()
    row = next(r for r in table_rows(md, "network") if r["network"] == "Swin-T")
    assert [row["compared with"], row["change"]] == ["separate_downsampling", "+1.00"]
    assert row["verdict"] == "**step better**" and row["published change"] == "+0.67"
    assert "Swin-T" in md[md.index("accuracy against measured speed"):]  # among the speed figure's points
    assert tmp_path / "out" / "roadmap.png" in written
    steps = json.loads((tmp_path / "out" / "agreement.json").read_text())["steps"]
    assert "swin_t" not in steps and len(steps) == 15  # the rank agreement is over the roadmap's steps only
