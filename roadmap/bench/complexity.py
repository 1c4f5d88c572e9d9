"""python -m roadmap.bench.complexity [roadmap=NAME] [--config-dir DIR] [--json]: params and GMACs of every step of a
roadmap at 224x224, 1000 classes, next to the published GMACs (a step without a published number shows its own)."""

from __future__ import annotations

import json
import sys

import torch

from roadmap.errors import ConfigError, OneLineParser
from roadmap.nets.model import RoadmapNet, gmacs, num_params


def table(roadmap: str = "convnext_t", config_dirs=()) -> list[dict]:
    from roadmap.config import load_roadmap, step_model_config

    rows, cache = [], {}
    for s in load_roadmap(roadmap, config_dirs).steps:
        cfg = step_model_config(s.name, roadmap, config_dirs=config_dirs)
        if cfg not in cache:  # recipe-only steps have their parent's network
            with torch.device("meta"):  # shapes only: nothing is allocated or computed
                model = RoadmapNet(cfg)
            cache[cfg] = (num_params(model), gmacs(model))
        params, macs = cache[cfg]
        rows.append({"order": s.order, "step": s.name, "label": s.label, "params": params, "gmacs": round(macs, 3),
                     "paper_gmacs": s.gmacs, "paper_top1": s.top1})
    return rows


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m roadmap.bench.complexity", description=__doc__)
    parser.add_argument("roadmap", nargs="?", default="roadmap=convnext_t",
                        help="roadmap=convnext_t (default), convnext_b, bag_of_tricks or a user's own")
    parser.add_argument("--config-dir", action="append", default=[], help="a folder with your own step/ and roadmap/")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)
    key, _, name = args.roadmap.rpartition("=")
    if key not in ("", "roadmap"):
        parser.error(f"{args.roadmap}: the one setting is roadmap=NAME")
    try:
        rows = table(name, args.config_dir)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'step':<24}{'params':>14}{'GMACs':>9}{'paper':>9}{'paper top-1':>13}")
    for r in rows:
        paper = f"{r['paper_gmacs']:>9.3f}" if r["paper_gmacs"] is not None else f"{'':>9}"
        top1 = f"{r['paper_top1']:>13.2f}" if r["paper_top1"] is not None else ""
        print(f"{r['step']:<24}{r['params']:>14,}{r['gmacs']:>9.3f}{paper}{top1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
