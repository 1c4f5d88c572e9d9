"""Hydra's sweeper for `python run.py -m +explore=random|search|gp`: draws networks from the exploration's Optuna
study (roadmap.explore.study) and runs them through the configured launcher (basic, joblib, submitit), `n_jobs` at a time,
until the study holds `explore.samples` networks. Hydra finds it in the hydra_plugins namespace; it is selected by
conf/hydra/sweeper/explore.yaml."""

from __future__ import annotations

import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf


class ExploreSweeper(Sweeper):
    def __init__(self, n_jobs: int = 1):
        self.n_jobs = n_jobs  # checked by sweep, where a bad value is one line
        self.config = self.launcher = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                               task_function=task_function, config=config)

    def sweep(self, arguments: list[str]):
        from roadmap.errors import ConfigError
        from roadmap.explore.study import Exploration

        parsed = OverridesParser.create(config_loader=self.hydra_context.config_loader).parse_overrides(arguments)
        swept = [o.input_line for o in parsed if o.is_sweep_override()]
        returns, job, exploration = [], 0, None
        try:
            if not (isinstance(self.n_jobs, int) and not isinstance(self.n_jobs, bool) and self.n_jobs >= 1):
                raise ConfigError(f"hydra.sweeper.n_jobs={self.n_jobs!r}: must be an integer >= 1")
            if swept:
                raise ConfigError(f"{swept[0]}: an exploration trains every network once, with one seed; more seeds "
                                  f"of a network: python run.py -m +explore=net <its switches> seed=0,1,2")
            exploration = Exploration.from_config(self.config)
            sweep_dir = Path(self.config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            print(exploration.progress(), flush=True)
            while True:
                draws = []
                while len(draws) < self.n_jobs and (draw := exploration.next()) is not None:
                    draws.append(draw)
                if not draws:
                    break
                results = self.launcher.launch([[*arguments, *d.overrides] for d in draws], initial_job_idx=job)
                job += len(draws)
                for d, r in zip(draws, results):
                    exploration.finish(d, r.return_value if r.status == JobStatus.COMPLETED else None)
                returns.append(results)
                print(exploration.progress(), flush=True)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        finally:
            if exploration is not None:
                exploration.close()
        return returns
