"""Train one roadmap step: python run.py +step=inverted_bottleneck [roadmap=...] [scale=...] [seed=1] ...

Sweeps: python run.py -m +sweep=roadmap [seed=0,1,2]   or   python run.py -m '+step=glob(*)'
A user's own steps and roadmaps: python run.py --config-dir my_conf +step=my_step (my_conf/step/my_step.yaml)
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from roadmap.config import compose, load_roadmap, register
from roadmap.errors import ConfigError

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
    """Reject a bad single run in one line before Hydra prints its multi-line errors (sweeps check per job)."""
    dirs, argv = config_dirs(argv)
    if any(a.startswith("-") for a in argv):
        return
    values = dict(a.lstrip("+").split("=", 1) for a in argv if "=" in a)
    try:
        if not argv or list(values) == ["roadmap"]:  # `python run.py [roadmap=NAME]`: the list of steps
            print(step_list(load_roadmap(values.get("roadmap", "convnext_t"), dirs)))
            sys.exit(0)
        try:
            compose([a for a in argv if not a.startswith("hydra")], dirs)
        except ConfigError:
            raise
        except Exception:
            unknown_roadmap_or_step(values, dirs)
            raise
    except ConfigError as e:
        fail(str(e))
    except Exception as e:  # Hydra's own: unknown key, group option or value type
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        fail(" ".join(lines[:1] + [line for line in lines[1:] if line.startswith(("Key", "Value"))][:1]))


def unknown_roadmap_or_step(values: dict, dirs: list[str]) -> None:
    """A ConfigError that names what is missing where a config did not compose for want of its roadmap or step
    file (the roadmaps there, the roadmap's steps); nothing otherwise."""
    roadmap = load_roadmap(values.get("roadmap", "convnext_t"), dirs)
    step = values.get("step")
    if step is None:
        return
    try:
        compose([f"+step={step}", f"roadmap={roadmap.name}"], dirs)
    except ConfigError:
        raise
    except Exception:
        roadmap.step(step)  # names the roadmap's steps when it does not list this one
        raise ConfigError(f"step={step!r} has no step/{step}.yaml in conf/ or the config dirs") from None


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


if __name__ == "__main__":
    from roadmap.train import Interrupted, sigterm_interrupts

    precheck(sys.argv[1:])
    sigterm_interrupts()
    try:
        main()
    except Interrupted as e:  # Ctrl-C or SIGTERM in an epoch: one line, the last checkpoint kept, a multirun stops
        print(f"interrupted: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt as e:  # outside an epoch: nothing half-trained
        name = e.args[0] if e.args else "SIGINT"
        print(f"interrupted by {name} outside an epoch; rerun the same command to go on", file=sys.stderr)
        sys.exit(143 if name == "SIGTERM" else 130)
