"""The offline kit of a GPU node: the wheels of exactly the packages the node lacks, and Fashion-MNIST's raw files.

python -m roadmap.gpu.kit build [--out gpu-kit] [--have FILE]     (make gpu-kit; needs the package index)
python -m roadmap.gpu.kit install KIT                              (make gpu-roadmap/gpu-check KIT=...; offline)

A GPU node (a PyTorch container, a cluster's GPU partition) is often offline and has torch and the scientific stack
already. `build` resolves the project's dependencies through the metadata of this environment (where `make setup`
installed them), leaves out what the node has (HAVE: by default a PyTorch container's packages and everything they
depend on; or a `pip freeze` of the node) and downloads the rest as CPython 3.12 manylinux wheels, at the versions
tested here. `install` puts them in KIT/site with pip's --no-index --no-deps --target: nothing is resolved, so the
node's torch is never touched; the commands run with KIT/site on PYTHONPATH. `install` imports only the standard
library (the node has no Hydra until the kit is installed); `build` takes the dataset's files from roadmap.data.datasets.
"""

from __future__ import annotations

import gzip
import importlib.metadata as metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from roadmap.errors import OneLineParser  # argparse only: `install` runs where Hydra is not yet installed

ROOT = Path(__file__).resolve().parents[2]
# What a PyTorch container has (NVIDIA's and PyTorch's images, and the GPU machines this project borrows); what
# they depend on is taken as there too.
CONTAINER = ("torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "statsmodels", "joblib", "filelock",
             "tqdm", "pytest")
TARGET = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",  # the node's
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
LIMIT_MB = 40  # the kit but TorchCodec's wheel (about 10 MB): the GPU machine this project borrows takes 64 MiB
OUTSIDE_LIMIT = ("torchcodec",)  # with the working tree


class KitError(Exception):
    """What stops a kit from being built or installed, in one line."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements() -> list[str]:
    """The project's dependencies as installed here (pyproject.toml's; the extras' carry a marker that is false)."""
    try:
        return metadata.requires("roadmap") or []
    except metadata.PackageNotFoundError:
        raise KitError("the project is not installed in this python: run `make setup` first") from None


def closure(requirements: list[str]) -> dict[str, str | None]:
    """Every package the requirements need on the node (markers evaluated for CPython 3.12 on Linux x86_64), with
    the version installed here (None where it is not installed here: the newest that fits is downloaded)."""
    from packaging.requirements import Requirement

    found: dict[str, str | None] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if name in found or (req.marker is not None and not req.marker.evaluate(TARGET)):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            found[name] = None
            continue
        found[name] = dist.version
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or sub.marker.evaluate(TARGET):  # `extra == ...` is false: no extras
                todo.append(sub)
    return found


def have(freeze: Path | None) -> set[str]:
    """The packages the node has: the names of a `pip freeze` of it, or a PyTorch container's with their closure."""
    if freeze is None:
        return set(closure(list(CONTAINER)))
    names = set()
    for line in freeze.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match and not line.startswith("-"):
            names.add(canonical(match.group(1)))
    if not names:
        raise KitError(f"HAVE={freeze}: no package names in it (expected the output of `pip freeze` on the node)")
    return names


def missing(freeze: Path | None = None) -> dict[str, str | None]:
    """The packages to carry: what the project needs on the node less what the node has (torch never)."""
    present = have(freeze) | {"torch", "torchvision"}
    return {name: version for name, version in sorted(closure(project_requirements()).items())
            if name not in present}


def download(packages: dict[str, str | None], wheels: Path) -> None:
    """Each package's CPython 3.12 manylinux wheel (pure-Python ones as they are; one with only a source release on
    the index is built into a wheel here)."""
    wheels.mkdir(parents=True, exist_ok=True)
    target = ["--only-binary=:all:", "--python-version", TARGET["python_version"], "--implementation", "cp",
              *[a for p in PLATFORMS for a in ("--platform", p)]]
    for name, version in packages.items():
        spec = f"{name}=={version}" if version else name
        got = pip("download", "--no-deps", "-d", str(wheels), *target, spec)
        if got.returncode != 0:  # a source release only (antlr4-python3-runtime): build its wheel
            built = pip("wheel", "--no-deps", "-w", str(wheels), spec)
            if built.returncode != 0:
                raise KitError(f"no wheel of {spec} for CPython {TARGET['python_version']} "
                               f"({(got.stderr or built.stderr).strip().splitlines()[-1]})")


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "-q", *args], capture_output=True, text=True)


def copy_fashion_mnist(dest: Path) -> None:
    """The four gzipped raw files, laid out as torchvision downloads them (FashionMNIST/raw/*.gz): from Debian's
    dataset-fashion-mnist, or gzipped from the files a run has extracted in data/fashion_mnist."""
    from roadmap.data.datasets import DEBIAN_FASHION_MNIST, FASHION_FILES  # here: `install` runs where Hydra is not yet installed

    raw = dest / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    extracted = ROOT / "data" / "fashion_mnist" / "FashionMNIST" / "raw"
    for f in FASHION_FILES:
        if (DEBIAN_FASHION_MNIST / f"{f}.gz").exists():
            shutil.copyfile(DEBIAN_FASHION_MNIST / f"{f}.gz", raw / f"{f}.gz")
        elif (extracted / f).exists():
            with open(extracted / f, "rb") as src, gzip.open(raw / f"{f}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            raise KitError(f"Fashion-MNIST's {f} is neither in {DEBIAN_FASHION_MNIST} (apt-get install "
                           f"dataset-fashion-mnist) nor in {extracted} (any embedded run puts it there)")


def size_mb(folder: Path, but: tuple[str, ...] = ()) -> float:
    """The folder's size in MB, leaving out the wheels of the packages `but` names."""
    return sum(f.stat().st_size for f in folder.rglob("*")
               if f.is_file() and not (f.suffix == ".whl" and canonical(f.name.split("-")[0]) in but)) / 2**20


def build(out: Path, freeze: Path | None, python: str = TARGET["python_version"]) -> dict:
    TARGET.update(python_version=python, python_full_version=f"{python}.0")
    packages = missing(freeze)
    if out.exists():
        shutil.rmtree(out)
    download(packages, out / "wheels")
    copy_fashion_mnist(out / "fashion_mnist")
    manifest = {"python": TARGET["python_version"], "platforms": list(PLATFORMS),
                "have": str(freeze) if freeze else "a PyTorch container: " + ", ".join(CONTAINER),
                "packages": packages, "wheels": sorted(p.name for p in (out / "wheels").glob("*.whl")),
                "data": "fashion_mnist/FashionMNIST/raw/*.gz", "size_mb": round(size_mb(out), 1),
                "size_mb_but_" + "_".join(OUTSIDE_LIMIT): round(size_mb(out, OUTSIDE_LIMIT), 1)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if size_mb(out, OUTSIDE_LIMIT) > LIMIT_MB:
        raise KitError(f"{out} is {size_mb(out, OUTSIDE_LIMIT):.1f} MB without {', '.join(OUTSIDE_LIMIT)}, over the "
                       f"kit's {LIMIT_MB} MB")
    return manifest


def install_command(kit: Path) -> list[str]:
    """pip's offline install of the kit's wheels into KIT/site: no index, no dependency resolution (torch untouched)."""
    return [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--upgrade", "--target",
            str(kit / "site"), *sorted(str(w) for w in (kit / "wheels").glob("*.whl"))]


def install(kit: Path) -> None:
    if not (kit / "manifest.json").exists():
        raise KitError(f"KIT={kit}: no manifest.json (make it with `make gpu-kit KIT={kit}` where pip reaches PyPI)")
    stamp = kit / "site" / ".installed"
    if stamp.exists():
        return
    p = subprocess.run(install_command(kit), capture_output=True, text=True)
    if p.returncode != 0:
        raise KitError(f"installing {kit}/wheels failed: {(p.stderr or p.stdout).strip().splitlines()[-1]}")
    stamp.write_text("")


def main(argv=None) -> int:
    p = OneLineParser(prog="python -m roadmap.gpu.kit", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the kit (needs the package index)")
    b.add_argument("--out", type=Path, default=Path("gpu-kit"))
    b.add_argument("--have", type=Path, default=None, help="a `pip freeze` of the node (default: a PyTorch container)")
    b.add_argument("--python", default=TARGET["python_version"], help="the node's Python (default %(default)s)")
    i = sub.add_parser("install", help="install a kit's wheels into KIT/site, offline")
    i.add_argument("kit", type=Path)
    a = p.parse_args(argv)
    try:
        if a.command == "build":
            if a.have is not None and not a.have.is_file():
                raise KitError(f"HAVE={a.have}: no such file (give a `pip freeze > FILE` of the node)")
            m = build(a.out, a.have, a.python)
            print(f"{a.out}: {len(m['wheels'])} wheels ({', '.join(m['packages'])}) and Fashion-MNIST, "
                  f"{m['size_mb']} MB; on the node: make gpu-roadmap KIT={a.out}")
        else:
            install(a.kit)
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
