"""python -m roadmap.complexity [regime=r200] [--json]: params and GMACs of every step at 224x224, 1000 classes,
next to the paper's GMACs."""

from __future__ import annotations

import argparse
import json
import sys

from .model import ConfigError, RoadmapNet, gmacs, num_params
from .steps import REGIMES, steps


def table(regime: str = "r50") -> list[dict]:
    from .config import step_model_config

    rows, cache = [], {}
    for s in steps(regime):
        cfg = step_model_config(s.name, regime)
        if cfg not in cache:  # the classic-recipe step has its baseline's network
            model = RoadmapNet(cfg)
            cache[cfg] = (num_params(model), gmacs(model))
        params, macs = cache[cfg]
        rows.append({"order": s.order, "step": s.name, "label": s.label, "params": params, "gmacs": round(macs, 3),
                     "paper_gmacs": s.gmacs, "paper_top1": s.top1})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m roadmap.complexity", description=__doc__)
    parser.add_argument("regime", nargs="?", default="regime=r50", help="regime=r50 (default) or regime=r200")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    args = parser.parse_args(argv)
    regime = args.regime.removeprefix("regime=")
    try:
        if regime not in REGIMES:
            raise ConfigError(f"regime={regime!r}: must be one of {', '.join(REGIMES)}")
        rows = table(regime)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'step':<24}{'params':>14}{'GMACs':>9}{'paper':>9}{'paper top-1':>13}")
    for r in rows:
        print(f"{r['step']:<24}{r['params']:>14,}{r['gmacs']:>9.3f}{r['paper_gmacs']:>9.3f}{r['paper_top1']:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
