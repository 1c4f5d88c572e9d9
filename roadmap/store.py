"""The run store: where runs live and what their directories hold. No other module builds a path under runs/.

<runs_root>/<scale>/<roadmap>/                        a roadmap's group: roadmap.json (its steps, labels, numbers)
<runs_root>/<scale>/<roadmap>/<step>/seed<k>/          a run of the roadmap's own walk (kind `roadmap`)
<runs_root>/<scale>/<roadmap>/<kind>/<step>/seed<k>/   a run of another kind: `isolated` and `leave_one_out`
                                                       (ablations; invalid.jsonl: steps they cannot build) and
                                                       `explore` (drawn networks; <name>.journal: the Optuna
                                                       study of exploration <name>, roadmap.explore.study)
A run directory holds
    config.yaml     the resolved config
    metrics.jsonl   one line per finished epoch
    summary.json    written when the run ends: done, diverged, failed or interrupted
    last.pt         model, optimizer, schedule, grad scaler and EMA after the last finished epoch
    .lock           held by the process that trains it (.lock.owner says which)
    .replacing/     a run that replaces this one (train.overwrite=true) until its first checkpoint: its config.yaml,
                    metrics.jsonl and last.pt, moved in by `replace`; the old run stays whole until then
<runs_root>/.gpus/cuda<i>.lock                         held by the run on GPU i, when runs share a machine's GPUs
Every write is atomic (a temporary file renamed over the old one) or a single short appended line.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from roadmap.errors import ConfigError
from roadmap.kinds import KINDS, kind_of
from roadmap.record import RunRecord, checked, upgraded

FINISHED = ("done", "diverged")  # a run with one of these statuses is not trained again


def run_dir(root, scale: str, roadmap: str, kind: str, step: str, seed) -> Path:
    """The directory of one run (the `run_dir` of conf/config.yaml resolves through it)."""
    return kind_dir(group_dir(root, scale, roadmap), kind) / str(step) / f"seed{seed}"


def group_dir(root, scale: str, roadmap: str) -> Path:
    """The folder of a roadmap's runs at a scale (what `python -m roadmap.report` reads)."""
    return Path(str(root)) / str(scale) / str(roadmap)  # runs_root=5: a folder named 5


def kind_dir(group: Path, kind: str) -> Path:
    """The folder of a group's runs of one kind: the group itself for the roadmap's own runs."""
    folder = kind_of(kind).folder
    return Path(group) if folder is None else Path(group) / folder


def folder_of(run: Path) -> Path:
    """The folder of the runs of a run's kind (its group's folder for the roadmap's own runs)."""
    return Path(run).parents[1]


def group_of(run: Path, kind: str) -> Path:
    """The group folder a run directory of `kind` belongs to."""
    folder = folder_of(run)
    return folder if kind_of(kind).folder is None else folder.parent


def kind_of_path(run: Path) -> str:
    """A run's kind from where its directory is (for summaries that do not say it)."""
    folder = folder_of(run).name
    return next((k.name for k in KINDS.values() if k.folder == folder),
                next(k.name for k in KINDS.values() if k.folder is None))


# -- files ---------------------------------------------------------------------------------------------------------

def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(value, indent=1))


def append_line(path: Path, record: dict) -> None:
    """One JSON line appended to `path`: one short write, so lines from parallel processes do not interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_lines(path: Path) -> list[dict]:
    """The JSON lines of `path` up to the first unreadable one (a line cut by a kill, or one that holds no JSON
    object: a damaged file); none when it is missing."""
    out = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return out
    for line in lines:
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError)
            break
        if not isinstance(value, dict):
            break
        out.append(value)
    return out


def check_writable(root, run: Path, key: str = "runs_root") -> None:
    """A one-line error naming runs_root (or the setting `key`) where the run's directory could not be made or written
    (a file on its path, a read-only or virtual file system, no permission); probed by making and removing a folder in
    the deepest part of the path that exists, so nothing is left behind."""
    import tempfile

    if not str(root).strip():  # an unset shell variable: not the current folder (nor / for runs_root/.multirun)
        raise ConfigError(f"{key}={root!r}: must be a folder's path ({key}=. for the current folder)")
    existing = Path(run)
    try:
        while not (existing.exists() or existing.is_symlink()):
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"{key}={root}: {existing} is not a folder")
        tempfile.TemporaryDirectory(dir=existing, prefix=".probe-").cleanup()
    except OSError as e:
        raise ConfigError(f"{key}={root}: cannot write in {existing} ({e.strerror or type(e).__name__})") from None


def check_files(run: Path, kind: str) -> None:
    """A one-line error naming a folder where the run writes one of its files (or its group its roadmap.json)."""
    paths = [*(Path(run) / n for n in (*RUN_FILES, ".lock", ".lock.owner")), group_of(run, kind) / "roadmap.json"]
    folder = next((p for p in paths if p.is_dir()), None)
    if folder is not None:
        raise ConfigError(f"{folder}: a folder where the run writes a file; move it away")


# -- one run -------------------------------------------------------------------------------------------------------

def upgraded_summary(summary: dict, run: Path) -> RunRecord:
    """A summary in today's format (roadmap.record.upgraded; a failed run's kind from where its directory is)."""
    return upgraded(summary, kind_of_path(run))


def read_summary(run: Path) -> dict | None:
    try:
        summary = json.loads((Path(run) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return upgraded_summary(summary, run) if isinstance(summary, dict) else None


def write_summary(run: Path, summary: dict) -> None:
    write_json(Path(run) / "summary.json", summary)


def clear_summary(run: Path) -> None:
    (Path(run) / "summary.json").unlink(missing_ok=True)


def read_metrics(run: Path) -> list[dict]:
    return read_lines(Path(run) / "metrics.jsonl")


def write_metrics(run: Path, history: list[dict]) -> None:
    atomic_write_text(Path(run) / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))


def append_metrics(run: Path, metrics: dict) -> None:
    append_line(Path(run) / "metrics.jsonl", metrics)


def write_config(run: Path, text: str) -> None:
    atomic_write_text(Path(run) / "config.yaml", text)


def checkpoint_path(run: Path) -> Path:
    return Path(run) / "last.pt"


def save_checkpoint(run: Path, state: dict) -> None:
    atomic_save(state, checkpoint_path(run))


def load_checkpoint(run: Path, device) -> dict | None:
    """The run's last.pt, or None when there is none; a one-line error when it cannot be read."""
    import torch

    path = checkpoint_path(run)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ConfigError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}); move it away or rerun "
                          f"with train.overwrite=true to start over") from None


RUN_FILES = ("summary.json", "metrics.jsonl", "config.yaml", "last.pt")  # the order `replace` replaces them in
STAGING = ".replacing"


def holds_run(run: Path) -> bool:
    """Whether the run directory holds (part of) a run: what train.overwrite=true replaces."""
    return any((Path(run) / name).exists() for name in RUN_FILES)


def staging(run: Path) -> Path:
    """An empty folder in the run directory for the first files of a run that replaces the one there."""
    discard_staging(run)
    folder = Path(run) / STAGING
    folder.mkdir()
    return folder


def discard_staging(run: Path) -> None:
    """Remove what a replacing run staged (it stopped before its first checkpoint, or was killed)."""
    import shutil

    folder = Path(run) / STAGING
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    shutil.rmtree(folder, ignore_errors=True)


def replace(run: Path) -> None:
    """The staged run takes the old one's place: the old summary goes first (a run without one resumes or is refused,
    never taken as finished), then each file is replaced by its staged version or removed. A kill part-way leaves
    files of two runs, which the checkpoint's run id and the fingerprint tell apart (the trainer refuses them)."""
    run = Path(run)
    folder = run / STAGING
    for name in RUN_FILES:
        if (folder / name).exists():
            os.replace(folder / name, run / name)
        else:
            (run / name).unlink(missing_ok=True)
    discard_staging(run)


def claim_gpu(root, count: int, say=print, poll: float = 5.0):
    """(index, lock) of the first of this machine's `count` GPUs that no other run of `root` holds, for runs side by
    side (the parallel launcher): each takes a GPU of its own, no CUDA_VISIBLE_DEVICES needed. While every GPU is
    held it says so once and waits. The lock (<root>/.gpus/cuda<i>.lock) dies with its process."""
    from filelock import FileLock, Timeout

    folder = Path(root) / ".gpus"
    folder.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for index in range(count):
            held = FileLock(folder / f"cuda{index}.lock")
            try:
                held.acquire(timeout=0)
                return index, held
            except Timeout:
                continue
        if not waiting:
            say(f"all {count} GPUs are held by other runs under {root}: waiting for one", flush=True)
            waiting = True
        time.sleep(poll)


@contextmanager
def lock(run: Path, main: bool = True):
    """Hold the run directory for this process: a second process on the same directory (a second terminal, a
    requeued job whose first copy still lives) gets a one-line error naming the holder. The lock dies with its
    process. Directories this call created are removed again if the run stops with bad input before writing."""
    from filelock import FileLock, Timeout

    if not main:  # the other ranks of a DDP run belong to rank 0's run
        yield
        return
    run = Path(run)
    missing = [p for p in (run, *run.parents) if not p.exists()]
    run.mkdir(parents=True, exist_ok=True)
    held, owner = FileLock(run / ".lock"), run / ".lock.owner"
    try:
        held.acquire(timeout=0)
    except Timeout:
        holder = owner.read_text().strip() if owner.exists() else "another process"
        raise ConfigError(f"{run} is being trained by {holder}; wait for it to finish or stop it") from None
    try:
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    except ConfigError:  # bad input writes nothing; a crash leaves the directory for its failure summary
        if missing and {p.name for p in run.iterdir()} <= {".lock", ".lock.owner"}:
            owner.unlink(missing_ok=True)
            (run / ".lock").unlink(missing_ok=True)
            for path in missing:  # innermost first; stops at the first one another run has used meanwhile
                try:
                    path.rmdir()
                except OSError:
                    break
        raise
    finally:
        owner.unlink(missing_ok=True)
        held.release()


def write_failure(run: Path, summary: dict, create: bool = False) -> None:
    """Record a run that stopped with an error (status failed), so sweeps and reports show it: where its directory
    exists (or is made, `create`), and never over the summary of a run that finished, was interrupted or is
    training (its summary says so and its last.pt is kept): only an earlier failure is replaced."""
    run = Path(run)
    previous = read_summary(run)
    if previous is not None and previous.get("status") != "failed":
        return
    try:
        if create:
            run.mkdir(parents=True, exist_ok=True)
        if run.exists():
            write_summary(run, {**summary, "status": "failed"})
    except OSError:  # nowhere to record it (runs_root cannot be written): the run's error line says why
        pass


# -- a group of runs -----------------------------------------------------------------------------------------------

def write_roadmap(run: Path, kind: str, roadmap: dict) -> None:
    """The roadmap a run belongs to, next to its group's runs (so the report needs no Hydra)."""
    write_json(group_of(run, kind) / "roadmap.json", roadmap)


def roadmap_file(run: Path, kind: str) -> Path | None:
    """The roadmap.json a run's group has (or its kind's folder, where runs wrote it before this module)."""
    return next((p for p in (group_of(run, kind) / "roadmap.json", folder_of(run) / "roadmap.json") if p.exists()),
                None)


def read_roadmap(run: Path, kind: str) -> dict | None:
    """The roadmap a run belongs to, from its roadmap_file; None when there is none, a warning when it is unreadable
    or holds no JSON object."""
    path = roadmap_file(run, kind)
    if path is None:
        return None
    try:
        node = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        warnings.warn(f"ignoring {path}: {e}", stacklevel=2)
        return None
    if not isinstance(node, dict):
        warnings.warn(f"ignoring {path}: not a roadmap (a JSON object of its fields); got {node!r:.40}", stacklevel=2)
        return None
    return node


def summaries(folder: Path):
    """(run directory, summary) for every run under `folder`, in path order; unreadable summaries are warned about
    and skipped, as are the store's own hidden folders (.multirun, .gpus, a run's .replacing)."""
    for path in _summary_files(Path(folder)):
        try:
            s = checked(json.loads(path.read_text()), kind_of_path(path.parent), KINDS)
        except (OSError, ValueError) as e:
            warnings.warn(f"skipping {path}: unreadable summary ({e})", stacklevel=2)
            continue
        yield path.parent, s


def _summary_files(folder: Path) -> list[Path]:
    """Every summary.json under `folder` but in hidden folders, in path order, through linked folders too (runs linked
    in from another disk), each real folder once (a link back up is no loop)."""
    found, seen = [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        dirs[:] = [] if real in seen else [d for d in dirs if not d.startswith(".")]
        if real not in seen and "summary.json" in files:
            found.append(Path(top) / "summary.json")
        seen.add(real)
    return sorted(found)


def record(run: Path, kind: str, entry: dict) -> None:
    """A run of an ablation that is not trained (why, in `entry`), in its kind's folder."""
    append_line(folder_of(run) / kind_of(kind).records, entry)


def records(folder: Path, kind: str) -> list[dict]:
    """What `record` wrote in the folder of a group's runs of `kind`: each a step and the reason, as texts (an entry
    that is not is warned about and skipped)."""
    path = Path(folder) / kind_of(kind).records
    entries = read_lines(path)
    good = [e for e in entries if isinstance(e.get("step"), str) and isinstance(e.get("reason"), str)]
    if len(good) < len(entries):
        warnings.warn(f"skipping {len(entries) - len(good)} line(s) of {path}: not a step and a reason as texts",
                      stacklevel=2)
    return good
