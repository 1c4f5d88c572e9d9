"""An exploration's Optuna study: one per exploration, stored beside its population in Optuna's journal file
(`runs/<scale>/<roadmap>/explore/<name>.journal`), drawn from with the ask-and-tell API.

Rerunning the same command continues the study: the sampler sees every trial told so far, and the exploration ends
when `explore.samples` networks have been admitted. Several processes started with the same command (one per GPU,
one per SLURM job) share the study: each draws inside a short critical section under `<name>.lock`, so none draws
while another is choosing, and a network being trained by one is visible to the others (they never train it again).
Each process holds `<name>.workers/<worker>.lock` while it lives; a trial left running by a process that died (killed,
out of time) is taken over by the next one, whose trainer resumes the run from its last checkpoint.

A draw ends as one of OUTCOMES (the trial's user attribute `outcome`):
  trained      admitted: valid, within the budget, not drawn before; trained, then told its top-1 (FAIL if the
               run failed or diverged)
  invalid      an invalid combination (random sampler only: it rejects, which keeps its draws uniform over the
               valid networks; the model-based samplers repair it, see explore.repair); told PRUNED
  over_budget  costlier than explore.budget; never trained; told PRUNED with the Optuna constraint `gmacs` =
               cost - budget (> 0), which TPE learns to avoid (GP: see _reject)
  redrawn      a network the study holds already: told the value of its first trial (nothing is trained again)
Every draw within the budget carries the same constraint (<= 0), so the samplers' constraint models see the cost of
every network they proposed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import statistics
import uuid
import warnings
from pathlib import Path

import optuna
from filelock import FileLock, Timeout
from optuna.trial import TrialState

from roadmap import seeding
from roadmap.errors import ConfigError
from roadmap.explore.space import check_space, cost, decode, encode, overrides, repair
from roadmap.nets.identity import network_id, switches
from roadmap.nets.model import ModelConfig
from roadmap.settings import differences

SAMPLERS = ("random", "tpe", "gp")
OUTCOMES = ("trained", "invalid", "over_budget", "redrawn")
MAX_DRAWS = 200  # draws in a row without an admitted network before the space counts as exhausted


@dataclasses.dataclass(frozen=True)
class Draw:
    """An admitted trial: the network to train, and the Hydra overrides that select it."""
    number: int
    network: str
    switches: dict

    @property
    def overrides(self) -> list[str]:
        return overrides(self.switches)


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    """random: uniform; tpe: multivariate TPE, with the constant liar so several workers spread out; gp: Optuna's
    Gaussian-process sampler (it models running trials itself). The study's startup draws are random draws, chosen
    by the Exploration (Optuna's own startup counts would count rejected or imputed draws)."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True, n_startup_trials=0)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=0)
    raise ConfigError(f"explore.sampler={kind!r}: must be one of {', '.join(SAMPLERS)}")


def journal_storage(path: Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def load(path: Path) -> optuna.Study:
    """A stored study, read only (the report); a one-line ConfigError where its journal is damaged."""
    check_journal(Path(path))
    return optuna.load_study(study_name=Path(path).stem, storage=journal_storage(path))


def check_journal(path: Path) -> None:
    """A one-line ConfigError naming the journal and the line where it is not Optuna's journal (a line that is not
    one of its JSON entries, binary data, a last line cut short): Optuna would stop with an error naming no file, or
    append to the cut line and damage the journal further. Read under Optuna's own lock, which its writers hold
    while they append (no line is half written under it)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    if not path.exists():
        return
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read as a journal ({e.strerror}); move it away to start the "
                          f"exploration over, or explore.name=<new name> for a new one") from None
    finally:
        lock.release()
    for number, line in enumerate(lines, 1):
        last = number == len(lines)  # what follows the last end of line: nothing in a whole journal
        if last and not line:
            return
        try:
            entry = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            entry = None
        ok = isinstance(entry, dict) and "op_code" in entry
        if not ok or last:
            what = "is cut short" if last and (ok or line.startswith(b'{"op_code"')) else \
                "is not an entry of an Optuna journal"
            raise ConfigError(f"{path}: line {number} {what} (the file is damaged); move it away to start the "
                              f"exploration over, or explore.name=<new name> for a new one")


class Exploration:
    """One worker's view of an exploration's study."""

    def __init__(self, folder: Path, *, name: str, sampler: str, samples: int, space: dict, base: dict,
                 budget: float | None, resolution: int, seed: int, startup_trials: int, scored: dict | None = None):
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # a line per trial is ours (progress); GP fit notes are not
        make_sampler(sampler, 0)  # a bad name fails here, before anything is written
        self.name, self.sampler, self.samples, self.space = name, sampler, samples, check_space(space)
        self.base, self.budget, self.resolution = dict(base), budget, resolution
        self.seed, self.startup_trials = seed, startup_trials
        self.scored = scored or {}  # what else changes a network's score (score_settings)
        self._costs = {}  # network id -> GMACs, for redraws
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.workers = self.folder / f"{name}.workers"
        for path, is_folder in ((self.folder / f"{name}.lock", False), (self.workers, True)):
            if path.exists() and path.is_dir() != is_folder:  # a file where the folder goes, or the other way round
                raise ConfigError(f"{path}: the exploration keeps a {'folder' if is_folder else 'file'} here; move "
                                  f"it away (it holds no results)")
        self.journal = self.folder / f"{name}.journal"
        check_journal(self.journal)
        self.storage = journal_storage(self.journal)
        self.lock = FileLock(str(self.folder / f"{name}.lock"))
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.workers.mkdir(exist_ok=True)
        self.alive = FileLock(str(self.workers / f"{self.worker}.lock"))
        self.alive.acquire()
        with self.lock:
            try:  # loaded as it is: a rerun that is refused leaves the journal as it was
                self.study = optuna.load_study(study_name=name, storage=self.storage)
            except KeyError:
                self.study = optuna.create_study(study_name=name, storage=self.storage, direction="maximize")
            self._check_settings()

    @classmethod
    def from_config(cls, cfg) -> "Exploration":
        """The exploration a composed `+explore=...` config asks for (its settings checked first)."""
        from omegaconf import OmegaConf

        from roadmap import store
        from roadmap.explore.space import budget_gmacs
        from roadmap.config import validate

        ex = validate(cfg).explore
        if ex is None or ex.sampler is None:
            raise ConfigError("explore.sampler: an exploration needs one (random, tpe or gp): +explore=random, "
                              "+explore=search or +explore=gp")
        folder = store.folder_of(Path(cfg.run_dir))
        store.check_writable(cfg.runs_root, folder)
        model = OmegaConf.to_container(cfg.model, resolve=True)
        return cls(folder, name=ex.name, sampler=ex.sampler, samples=ex.samples,
                   space=ex.space, base=model, budget=budget_gmacs(cfg), resolution=int(cfg.data.resolution),
                   seed=ex.sampler_seed, startup_trials=ex.startup_trials, scored=score_settings(cfg, ex.space))

    def _check_settings(self) -> None:
        """A study holds networks drawn from one space under one budget and trained alike: a rerun with another space,
        budget or anything that changes a score (score_settings) would rank networks trained differently as one
        population. A study from before a setting was recorded takes the rerun's."""
        mine = {"space": {k: [encode(v) for v in vals] for k, vals in self.space.items()},
                "budget_gmacs": None if self.budget is None else round(self.budget, 6),
                "resolution": self.resolution, **self.scored}
        stored = self.study.user_attrs.get("settings") or {}
        what = [k for k in mine if k in stored and stored[k] != mine[k]]
        if what:
            pairs = {k: named(stored[k], mine[k]) for k in what}
            changed = differences({k: a for k, (a, _) in pairs.items()}, {k: b for k, (_, b) in pairs.items()})
            keys = ", ".join(what[:-1]) + (" and " if len(what) > 1 else "") + what[-1]
            raise ConfigError(f"{self.journal} holds a study drawn with another {keys} "
                              f"({'; '.join(changed[:4])}{'; ...' if len(changed) > 4 else ''}); "
                              f"explore.name=<new name> starts a new one, deleting the journal starts over")
        if set(mine) - set(stored):
            self.study.set_user_attr("settings", {**mine, **stored})

    def close(self) -> None:
        self.alive.release()
        Path(self.alive.lock_file).unlink(missing_ok=True)

    # drawing -------------------------------------------------------------------------------------------------

    def next(self) -> Draw | None:
        """The next network to train: a trial a dead worker left running, else a new admitted draw; None when the
        study holds `samples` admitted networks."""
        with self.lock:
            trials = self.study.get_trials(deepcopy=False)
            for t in trials:
                if t.state == TrialState.RUNNING and not self._alive(t.user_attrs.get("worker")):
                    if t.user_attrs.get("outcome") != "trained":  # died while drawing: nothing to resume
                        self.study.tell(t.number, state=TrialState.FAIL)
                        continue
                    self.storage.set_trial_user_attr(t._trial_id, "worker", self.worker)
                    print(f"[explore {self.name}] trial {t.number} ({t.user_attrs['network']}) was left running by "
                          f"{t.user_attrs.get('worker')}, which is gone: resuming it", flush=True)
                    return Draw(t.number, t.user_attrs["network"], t.user_attrs["switches"])
            if sum(t.user_attrs.get("outcome") == "trained" for t in trials) >= self.samples:
                return None
            for _ in range(MAX_DRAWS):
                draw = self._draw()
                if draw is not None:
                    return draw
        raise ConfigError(f"explore {self.name}: {MAX_DRAWS} draws in a row were invalid, over the budget or drawn "
                          f"before: the space within the budget looks exhausted ({self.progress()})")

    def _draw(self) -> Draw | None:
        """Ask one trial; tell it at once unless it is admitted."""
        trials = self.study.get_trials(deepcopy=False)
        # the sampler is seeded per draw from the study's length, so a rerun draws as the first run would have, and
        # two workers (which never draw at the same length) draw differently
        seed = seeding.derive(self.seed, "sampler", epoch=len(trials)) % 2**32  # numpy's legacy seeds are 32-bit
        # a model-based sampler starts once `startup_trials` networks are trained (random draws until then)
        started = sum(t.user_attrs.get("outcome") == "trained" for t in trials) >= self.startup_trials
        kind = self.sampler if started else "random"
        self.study.sampler = make_sampler(kind, seed)
        trial = self.study.ask()
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("sampler", kind)
        drawn = {k: decode(k, trial.suggest_categorical(k, [encode(v) for v in vals]))
                 for k, vals in self.space.items()}
        values = {**switches(self.base), **drawn}
        if self.sampler != "random":
            fixed = repair(values)
            trial.set_user_attr("repaired", fixed != values)
            values = fixed
        try:
            model = ModelConfig.from_dict({**self.base, **values})
        except ConfigError as e:
            return self._reject(trial, "invalid", str(e))
        net = network_id(model)
        trial.set_user_attr("network", net)
        trial.set_user_attr("switches", switches(model))
        if self.budget is not None:
            if net not in self._costs:
                self._costs[net] = cost(model, self.resolution)
            macs = self._costs[net]
            trial.set_user_attr("gmacs", macs)
            trial.set_constraint("gmacs", macs - self.budget)
            if macs > self.budget:
                return self._reject(trial, "over_budget", f"{macs:.4f} GMACs > {self.budget:.4f}")
        first = next((t for t in trials if t.user_attrs.get("network") == net
                      and t.user_attrs.get("outcome") == "trained"), None)
        if first is not None:
            trial.set_user_attr("outcome", "redrawn")
            trial.set_user_attr("first", first.number)
            if first.state == TrialState.COMPLETE:
                self.study.tell(trial, first.value)
            else:  # still training elsewhere, or failed: no value to give
                self.study.tell(trial, state=TrialState.FAIL)
            return None
        trial.set_user_attr("outcome", "trained")
        return Draw(trial.number, net, switches(model))

    def _reject(self, trial, outcome: str, reason: str) -> None:
        trial.set_user_attr("outcome", outcome)
        trial.set_user_attr("reason", reason)
        if outcome == "over_budget" and trial.user_attrs["sampler"] == "gp":
            # GPSampler fits its objective and constraint models to completed trials only: the draw is told the
            # median top-1 so far (a neutral value, marked imputed, never read as a result), and its constraint > 0
            # makes the constrained acquisition avoid the region
            values = [t.value for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                      if t.user_attrs.get("outcome") == "trained"]
            trial.set_user_attr("imputed", True)
            self.study.tell(trial, statistics.median(values) if values else 0.0)
        else:
            self.study.tell(trial, state=TrialState.PRUNED)

    def _alive(self, worker: str | None) -> bool:
        """Whether the worker that holds a trial still lives (its lock file is held)."""
        if worker == self.worker:
            return True
        path = self.workers / f"{worker}.lock"
        if worker is None or not path.exists():
            return False
        probe = FileLock(str(path))
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return True
        probe.release()
        path.unlink(missing_ok=True)
        return False

    def finish(self, draw: Draw, value: float | None) -> None:
        """Tell an admitted trial its top-1 (None, NaN or inf: the run failed or diverged)."""
        if value is not None and math.isfinite(value):
            self.study.tell(draw.number, float(value))
        else:
            self.study.tell(draw.number, state=TrialState.FAIL)

    # progress ------------------------------------------------------------------------------------------------

    def progress(self) -> str:
        """'[explore <name>] k/N networks: t trained, r training now (w workers), f failed; d draws: ...; best so
        far <id> top-1 <value>'."""
        trials = self.study.get_trials(deepcopy=False)
        c = counts(trials)
        workers = len({t.user_attrs.get("worker") for t in trials
                       if t.state == TrialState.RUNNING and t.user_attrs.get("outcome") == "trained"})
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("outcome") == "trained"]
        running = f", {c['running']} training now ({workers} worker{'s' * (workers > 1)})" if c["running"] else ""
        text = (f"[explore {self.name}] {c['trained']}/{self.samples} networks: {c['done']} trained{running}, "
                f"{c['failed']} failed; {len(trials)} draws: {c['invalid']} invalid, {c['repaired']} repaired, "
                f"{c['over_budget']} over budget, {c['redrawn']} drawn again")
        if done:
            best = max(done, key=lambda t: t.value)
            text += f"; best so far {best.user_attrs['network']} top-1 {best.value:.2f}"
        return text


def named(old, new) -> tuple:
    """Two versions of a config section as they are best told apart: by name where it has one that differs
    (recipe.name: modern -> classic says more than its ten values), else whole."""
    if isinstance(old, dict) and isinstance(new, dict) and "name" in old and old.get("name") != new.get("name"):
        return {"name": old["name"]}, {"name": new.get("name")}
    return old, new


def score_settings(cfg, space: dict) -> dict:
    """What changes a drawn network's score besides its switches, as the exploration's config has it: the seed, the
    data (not where it is read from or how it is decoded), the recipe, the epochs, the global batch, the cap on steps
    per epoch, the precision asked for, and the model's values the draws leave as they are (the scale's width and
    classes, the switches outside the space)."""
    from omegaconf import OmegaConf

    data = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items()
            if k not in ("root", "download", "decode", "bad_images")}
    model = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in space}
    train = {k: cfg.train.get(k) for k in ("epochs", "batch_size", "max_steps_per_epoch", "precision")}
    return json.loads(json.dumps({"seed": cfg.seed, "data": data, "recipe": OmegaConf.to_container(cfg.recipe,
                                  resolve=True), "train": train, "model": model}))


def counts(trials) -> dict:
    """How the draws of a study ended: outcome -> number, and trained networks by state."""
    out = {k: 0 for k in (*OUTCOMES, "done", "running", "failed", "repaired")}
    for t in trials:
        outcome = t.user_attrs.get("outcome")
        if outcome in out:
            out[outcome] += 1
        out["repaired"] += bool(t.user_attrs.get("repaired")) and outcome == "trained"
        if outcome == "trained":
            state = {TrialState.COMPLETE: "done", TrialState.RUNNING: "running"}.get(t.state, "failed")
            out[state] += 1
    return out


def trained(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of a study with only its trained networks (one trial each, told their top-1): what
    Optuna's importances and plots should see (no rejected, redrawn or imputed draws)."""
    copy = optuna.create_study(study_name=study.study_name, direction="maximize")
    copy.add_trials([t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                     if t.user_attrs.get("outcome") == "trained"])
    return copy


def studies(folder: Path) -> dict[str, optuna.Study]:
    """The explorations' studies stored in an `explore/` folder, by name; a damaged journal is warned about and
    skipped."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    for path in sorted(Path(folder).glob("*.journal")):
        try:
            out[path.stem] = load(path)
        except ConfigError as e:
            warnings.warn(f"skipping {e}", stacklevel=2)
    return out
