"""Train one roadmap step: python run.py +step=inverted_bottleneck [roadmap=...] [scale=...] [seed=1] ...

Sweeps: python run.py -m +sweep=roadmap [seed=0,1,2]   or   python run.py -m '+step=glob(*)'
A user's own steps and roadmaps: python run.py --config-dir my_conf +step=my_step (my_conf/step/my_step.yaml)
"""

import itertools
import sys
from contextlib import contextmanager

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from roadmap.config import compose, default_roadmap, load_roadmap, register, roadmap_of, step_file, user_folders
from roadmap.errors import ConfigError
from roadmap.store import check_writable

register()


def config_dirs(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the --config-dir/-cd folders, the other arguments)."""
    dirs, rest, args = [], [], iter(argv)
    for a in args:
        if a in ("--config-dir", "-cd"):
            dirs.append(next(args, ""))
        elif a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
        else:
            rest.append(a)
    return dirs, rest


def precheck(argv: list[str]) -> None:
    """Reject a bad command in one line, exit 2, before Hydra prints its multi-line errors or anything is written:
    the roadmap and step of a run, and of a sweep every value of a comma list of roadmaps or steps (a glob or range
    is left to Hydra), are composed and checked as their runs will be (roadmap.config: the user's config folders, the
    roadmap whole and named by its file). `python run.py [roadmap=NAME]` lists the roadmap's steps instead."""
    dirs, argv = config_dirs(argv)
    flags = {a for a in argv if a.startswith("-")}
    if {a.split("=", 1)[0] for a in flags} & HELP_FLAGS:
        return  # Hydra prints them wherever they are
    try:
        check_flags(argv)
        if not flags & {"-m", "--multirun"}:
            single_run(parse([a for a in argv if is_override(a)]))
        if flags - {"-m", "--multirun"}:
            return  # Hydra's own (--cfg, --info, ...)
        overrides = parse([a for a in argv if a not in flags])
        if not flags and {o.key_or_group for o in overrides} <= {"roadmap"}:  # the list of steps
            print(step_list(load_roadmap(value(overrides, "roadmap") or default_roadmap(), dirs)))
            sys.exit(0)
        sweep_dirs = set()
        for job, roadmap in jobs(overrides):
            cfg = check_job(job, roadmap, dirs)
            sweep_dirs.add(sweep_dir(overrides, cfg))
        if flags:  # a multirun: Hydra makes its sweep folder before any job runs (and checks runs_root)
            for key, root, folder in sorted(sweep_dirs):
                check_writable(root, folder, key=key)
    except ConfigError as e:
        fail(str(e))


# Hydra's command-line flags (python run.py --help), long and short; the first four print and exit wherever they are
HELP_FLAGS = {"--help", "-h", "--hydra-help", "--version"}
HYDRA_FLAGS = HELP_FLAGS | {"--cfg", "-c", "--resolve", "--package", "-p", "--run", "-r", "--multirun", "-m",
                            "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn",
                            "--experimental-rerun", "--info", "-i"}


def is_override(arg: str) -> bool:
    """key=value, +key=value, ++key=value or ~key (not a flag, nor a flag's value such as --cfg job)."""
    return not arg.startswith("-") and ("=" in arg or arg.startswith("~"))


def check_flags(argv: list[str]) -> None:
    """A flag Hydra does not know, or overrides on both sides of a flag (Hydra's parser reads the overrides in one
    piece: those after the flag are 'unrecognized'), is one line instead of Hydra's usage block."""
    first, flag = None, None
    for a in argv:
        if a.startswith("-"):
            if a.split("=", 1)[0] not in HYDRA_FLAGS:
                raise ConfigError(f"{a}: no flag of run.py (its flags are Hydra's: python run.py --help)")
            flag = flag or (a if first else None)
        elif is_override(a):
            if flag:
                raise ConfigError(f"{flag} comes between the overrides {first} and {a}: flags go before or after all "
                                  f"of them (python run.py {flag} ... {first} ... {a})")
            first = first or a


def single_run(overrides: list) -> None:
    """Without -m a sweep's values (a,b / glob / range) are Hydra's 5-line 'Ambiguous value': one line instead."""
    for o in overrides:
        if o.is_sweep_override() and not o.key_or_group.startswith("hydra"):
            raise ConfigError(f"{o.input_line}: several values are a sweep: add -m (python run.py -m ... "
                              f"{o.input_line}); a list is written {o.get_key_element()}=[a,b]")


def parse(argv: list[str]) -> list:
    """The command line's overrides as Hydra reads them, or a one-line error for one it cannot read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for arg in argv:
        try:
            parser.parse_overrides([arg])
        except Exception as e:  # OverrideParseException: the grammar's complaint
            raise ConfigError(f"{arg}: Hydra cannot read this override ({str(e).splitlines()[0]}); its grammar: "
                              f"https://hydra.cc/docs/advanced/override_grammar/basic/") from None
    return parser.parse_overrides(argv)


def value(overrides: list, key: str) -> str | None:
    """The value a (non-sweep) override gives `key`, if one does."""
    return next((o.get_value_element_as_str() for o in overrides
                 if o.key_or_group == key and not o.is_sweep_override() and not o.is_delete()), None)


def jobs(overrides: list):
    """(overrides, roadmap file or None where a glob chooses it) of each job whose roadmap and step a command names:
    one for a run; for a sweep, each combination of the values of its comma lists of roadmaps and steps, with its
    other sweeps left out. Hydra's own settings (hydra.*, hydra/...) are left to Hydra."""
    fixed, choices, globbed = [], [], False
    for o in overrides:
        if o.key_or_group.startswith("hydra"):
            continue
        if not o.is_sweep_override():
            fixed.append(o.input_line)
        elif o.key_or_group in ("roadmap", "step") and o.value_type.name in ("SIMPLE_CHOICE_SWEEP", "CHOICE_SWEEP"):
            key = o.get_key_element()
            choices.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            globbed |= o.key_or_group == "roadmap"
    for combination in itertools.product(*choices):
        job = [*fixed, *combination]
        roadmap = value(parse(job), "roadmap")
        yield job, None if globbed else roadmap or default_roadmap()


def check_job(job: list[str], roadmap: str | None, dirs: list[str]):
    """The job's config, or a ConfigError for a job whose config does not compose, naming why (the missing roadmap or
    step file, Hydra's first line otherwise), or whose roadmap is not as it must be (roadmap.config.roadmap_of)."""
    try:
        cfg = compose(job, dirs)
    except ConfigError:
        raise
    except Exception as e:  # Hydra's own: unknown key, group option or value type
        unknown_roadmap_or_step(parse(job), dirs)
        raise ConfigError(one_line(e)) from None
    roadmap_of(cfg, dirs, file=roadmap)
    return cfg


def sweep_dir(overrides: list, cfg) -> tuple[str, str, str]:
    """(the setting that names it, its value, the folder) of the folder a multirun's Hydra makes first:
    hydra.sweep.dir where the command gives it without an interpolation, else conf/config.yaml's runs_root/.multirun."""
    given = value(overrides, "hydra.sweep.dir")
    if given is not None and "${" not in given:
        return "hydra.sweep.dir", given, given
    return "runs_root", str(cfg.runs_root), f"{cfg.runs_root}/.multirun"


def one_line(error: Exception) -> str:
    """Hydra's message in one line: its first line and the line naming the key or value."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:1] + [line for line in lines[1:] if line.startswith(("Key", "Value"))][:1])


def unknown_roadmap_or_step(overrides: list, dirs: list[str]) -> None:
    """A ConfigError that names what is missing where a config did not compose for want of its roadmap or step
    file (the roadmaps there, the roadmap's steps); nothing otherwise."""
    roadmap = load_roadmap(value(overrides, "roadmap") or default_roadmap(), dirs)
    step = value(overrides, "step")
    if step is not None and step_file(step, user_folders(dirs)) is None:
        roadmap.step(step)  # names the roadmap's steps when it does not list this one
        raise ConfigError(f"step={step!r} has no step/{step}.yaml in conf/ or the config dirs")


def step_list(roadmap) -> str:
    """The roadmap's steps, one a line, with what each changes and its published top-1, then its references."""
    width = max(len(s.name) for s in roadmap.steps)
    lines = [f"{roadmap.title} ({roadmap.name}): python run.py +step=<name> [roadmap=<name>] trains one step"]
    for s in roadmap.steps:
        top1 = f"{s.top1:6.2f}" if s.top1 is not None else "     -"
        lines.append(f"  {s.name:<{width}}  {top1}  {s.label}{'  (branch)' if s.branch else ''}")
    for r in roadmap.references:
        top1 = f"{r.top1:6.2f}" if r.top1 is not None else "     -"
        lines.append(f"  {r.name:<{width}}  {top1}  {r.label}  (reference, trained alike: +reference={r.name})")
    return "\n".join(lines)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def execute(cfg, multirun: bool):
    """Train what the config asks for; in a single run, bad input exits 2 in one line and a diverged run exits 1.
    Returns the run's top-1 (what an exploration's study is told), None where it did not finish."""
    from roadmap.train import train, write_failure

    try:
        summary = train(cfg)
    except ConfigError as e:
        if not multirun:
            fail(str(e))
        write_failure(cfg, e, create=True)  # the sweep's report lists it as failed, with the reason
        print(f"error: {e}", file=sys.stderr)
        return None
    except Exception as e:
        write_failure(cfg, e)
        if not multirun:
            raise
        print(f"error: step {cfg.get('step')} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return None
    if summary.get("status") == "diverged" and not multirun:
        sys.exit(1)
    return summary.get("final_top1") if summary.get("status") == "done" else None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    return execute(cfg, HydraConfig.get().mode == RunMode.MULTIRUN)


@contextmanager
def sweep_returns():
    """A list that holds, after a multirun, what its jobs returned, through any launcher (Hydra's command line drops
    the sweep's return value: this keeps it on the way)."""
    from hydra._internal.hydra import Hydra

    returns, multirun = [], Hydra.multirun

    def keeping(self, *args, **kwargs):
        swept = multirun(self, *args, **kwargs)
        returns.extend(job_returns(swept))
        return swept

    Hydra.multirun = keeping
    try:
        yield returns
    finally:
        Hydra.multirun = multirun


def job_returns(swept) -> list:
    """The JobReturns in a sweeper's return value (a list of batches, each a list of jobs)."""
    from hydra.core.utils import JobReturn

    if isinstance(swept, JobReturn):
        return [swept]
    return [r for batch in swept for r in job_returns(batch)] if isinstance(swept, list | tuple) else []


def sweep_exit(returns: list) -> int:
    """A sweep's exit code: 1 where none of its runs finished, else 0, with one line counting those that did not
    (each said why in its own line)."""
    from hydra.core.utils import JobStatus

    unfinished = sum(r.status != JobStatus.COMPLETED or r.return_value is None for r in returns)
    if returns and unfinished == len(returns):
        print(f"error: none of the sweep's {len(returns)} runs finished (each one's error is above)", file=sys.stderr)
        return 1
    if unfinished:
        print(f"sweep: {unfinished} of {len(returns)} runs did not finish (failed or diverged: each one's line is "
              f"above; the report lists them)", file=sys.stderr)
    return 0


def command(argv: list[str]) -> int:
    """`python run.py <argv>` (Hydra reads sys.argv): the precheck, the run or sweep, the sweep's exit code."""
    precheck(argv)
    with sweep_returns() as returns:
        main()
    return sweep_exit(returns)


if __name__ == "__main__":
    from roadmap.train import Interrupted, sigterm_interrupts

    sigterm_interrupts()
    try:
        sys.exit(command(sys.argv[1:]))
    except Interrupted as e:  # Ctrl-C or SIGTERM in an epoch: one line, the last checkpoint kept, a multirun stops
        print(f"interrupted: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:  # outside an epoch: nothing half-trained
        name = e.args[0] if e.args else "SIGINT"
        print(f"interrupted by {name} outside an epoch; rerun the same command to go on", file=sys.stderr)
        sys.exit(143 if name == "SIGTERM" else 130)
