"""The documentation is checked as code: README.md and the guides in docs/.

- Every relative link points to a file that exists, and every #anchor to a heading of the page it names.
- Every command in a fenced code block (bash, sh, shell, console or unlabeled) is checked without training anything:
  `python run.py ...` (also under torchrun) through run.py's own precheck, then composed with Hydra and built into
  the typed settings and network config a run would build; `python -m roadmap.X ...`: the module runs as `__main__`
  until its argparse parser has read the documented arguments (nothing after that runs); `make X VAR=...`:
  `make -n` exits 0. A block that cannot be checked this way says why on the line before it,
  `<!-- unchecked: why -->`; the test prints how many commands it checked and skipped.
  A yaml block preceded by `<!-- file: my_conf/... -->` is written to that path (in a temporary folder, which
  `my_conf` in the commands then names), so a guide's own step and roadmap files are checked with its commands.
- The numbers the README states in prose ("The result") are the ones docs/agreement.json and docs/results.md hold.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
OPERATORS = {"&&", "||", ";", "|", "&", ";;"}
# placeholders a guide may write in a checked command, and what the test puts in their place
PLACEHOLDERS = {"<dir>": "runs/embedded/convnext_t", "RUNS_DIR": "runs/embedded/convnext_t", "<name>": "convnext_t",
                "<GPUs>": "2", "<file>": "requirements.txt"}


# -- reading Markdown -----------------------------------------------------------------------------------------------

@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    lang: str
    lines: list[str]
    unchecked: str | None = None  # why, from <!-- unchecked: why -->
    file: str | None = None  # from <!-- file: path -->


def blocks(text: str, doc: str = "doc") -> list[Block]:
    """The fenced code blocks of a Markdown text, each with the HTML comment on the line before it."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^\s*(`{3,}|~{3,})\s*(\{[\w-]+\}|[\w+-]*)", lines[i])  # a language or a MyST {directive}
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        unchecked = re.fullmatch(r"<!--\s*unchecked:\s*(.*?)\s*-->", before)
        filed = re.fullmatch(r"<!--\s*file:\s*(\S+)\s*-->", before)
        out.append(Block(doc, start + 1, lang, body, unchecked and unchecked.group(1), filed and filed.group(1)))
    return out


def commands(block: Block) -> list[str]:
    """The command lines of a shell block: comments and prompts dropped, continued lines joined."""
    out, pending = [], ""
    for raw in block.lines:
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    return out + ([pending] if pending.strip() else [])


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # links: their text
    text = text.lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text's headings (outside code blocks), repeated ones numbered as GitHub does."""
    seen, out, fence = {}, set(), None
    for line in text.splitlines():
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if m:
            fence = None if fence and line.strip().startswith(fence) else (fence or m.group(1))
            continue
        if fence is None and (h := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            s = slug(h.group(1))
            n = seen.get(s, 0)
            out.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    return out


def without_code(text: str) -> str:
    """The text with fenced blocks and inline code removed (links inside code are not links)."""
    text = re.sub(r"^\s*(`{3,}|~{3,}).*?^\s*\1", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def link_problems(text: str, path: Path) -> list[str]:
    """Every relative link or image of a Markdown file that points nowhere, or to a heading its target lacks."""
    problems = []
    for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", without_code(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{path.name}: link to {target}: no such file")
        elif anchor and dest.suffix == ".md":
            page = text if dest == path else dest.read_text(encoding="utf-8")
            if anchor not in anchors(page):
                problems.append(f"{path.name}: link to {target}: no heading #{anchor} in {dest.name}")
    return problems


# -- checking a command ---------------------------------------------------------------------------------------------

_RESULTS: dict[tuple[str, ...], str | None] = {}  # a command's tokens -> its problem (None: none)


class _Parsed(Exception):
    """Raised by argparse once a module's parser has read its arguments: the module stops there."""


@contextlib.contextmanager
def _stop_after_parsing():
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    argparse.ArgumentParser.parse_args = parse_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def _entry():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import run as entry

    return entry


@dataclass
class Checker:
    """Checks command lines; `problems` collects one line per command that fails, `checked` counts the others."""
    files: dict[str, Path] = field(default_factory=dict)  # a path prefix in the docs -> where the test wrote it
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def check(self, line: str, where: str = "") -> None:
        for old, new in PLACEHOLDERS.items():
            line = line.replace(old, new)
        try:
            segments = self.segments(line)
        except ValueError as e:
            self.problems.append(f"{where}: {line}: the shell cannot read it ({e})")
            return
        for segment in segments:
            key = tuple(segment)
            if key not in _RESULTS:  # a command documented twice (or in a copy of a guide) is checked once
                _RESULTS[key] = self.check_segment(segment)
            problem = _RESULTS[key]
            if problem:
                self.problems.append(f"{where}: {line}: {problem}")
            else:
                self.checked += 1

    def segments(self, line: str) -> list[list[str]]:
        """The commands of a shell line: split at ; & && | ||, a for loop's header and its do/done/wait dropped,
        and the command an `sbatch --wrap "..."` wraps in place of the wrapper."""
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        out, current = [], []
        for t in [*lexer, ";"]:
            if t not in OPERATORS:
                current.append(str(self.files.get(t, t)))
                continue
            while current[:1] in (["do"], ["then"]):
                current = current[1:]
            if not current or current[0] in ("for", "while", "if", "done", "fi", "wait"):
                current = []
                continue
            if current[0] == "sbatch" and "--wrap" in current[:-1]:
                out += self.segments(current[current.index("--wrap") + 1])
            else:
                out.append(current)
            current = []
        return [s for s in out if s]

    def check_segment(self, tokens: list[str]) -> str | None:
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):  # VAR=value before the command
            tokens = tokens[1:]
        if not tokens:
            return None
        head, rest = Path(tokens[0]).name, tokens[1:]
        if head == "make":
            return self.check_make(rest)
        if head in ("python", "python3") and rest[:1] == ["run.py"]:
            return self.check_run(rest[1:])
        if head in ("python", "python3") and rest[:1] == ["-m"] and len(rest) > 1:
            return self.check_module(rest[1], rest[2:])
        if head == "torchrun" and "run.py" in rest:
            return self.check_run(rest[rest.index("run.py") + 1:])
        return (f"`{head}` is not a command this test can check: mark its block with <!-- unchecked: why --> "
                f"on the line before it")

    def check_run(self, argv: list[str]) -> str | None:
        """run.py's precheck, then the config composed and built as a run builds it (a sweep: its first job)."""
        entry = _entry()
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                entry.precheck(argv)
        except SystemExit as e:
            if e.code not in (0, None):
                return err.getvalue().strip() or f"run.py's precheck exits {e.code}"
            return None  # the list of a roadmap's steps
        return self.check_config(entry, argv)

    def check_config(self, entry, argv: list[str]) -> str | None:
        from omegaconf import OmegaConf

        from roadmap.config import compose, default_roadmap, load_roadmap, model_config, step_of, validate
        from roadmap.errors import ConfigError

        dirs, rest = entry.config_dirs(argv)
        flags = [a for a in rest if a.startswith("-")]
        if set(flags) - {"-m", "--multirun"}:
            return None  # Hydra's own flags (--help, --cfg, ...)
        job = []
        try:
            for o in entry.parse([a for a in rest if a not in flags]):
                key = o.key_or_group
                if key.startswith("hydra/"):
                    problem = _hydra_option(key, o.get_value_element_as_str())
                    if problem:
                        return problem
                    continue
                if key.startswith("hydra"):
                    continue  # the launcher's and sweeper's settings are Hydra's to check
                if not o.is_sweep_override():
                    job.append(o.input_line)
                elif o.value_type.name in ("SIMPLE_CHOICE_SWEEP", "CHOICE_SWEEP"):
                    job.append(f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}")
                elif o.value_type.name == "RANGE_SWEEP":
                    job.append(f"{o.get_key_element()}={next(iter(o.sweep_iterator()))}")
                # a glob: the precheck leaves it to Hydra, and so does this test
            cfg = compose(job, dirs)
            if OmegaConf.is_missing(cfg, "step") and cfg.get("kind") == "roadmap":
                # +sweep=roadmap (or a glob) chooses the steps: check the roadmap's last step as its first job would be
                name = OmegaConf.select(cfg, "roadmap.name") or default_roadmap()
                cfg = compose([*job, f"+step={load_roadmap(name, dirs).steps[-1].name}"], dirs)
            if OmegaConf.is_missing(cfg, "step"):
                return None
            validate(cfg)
            if cfg.get("kind") == "roadmap":
                step_of(cfg, config_dirs=dirs)
            model_config(cfg)
        except ConfigError as e:
            return f"error: {e}"
        except Exception as e:  # Hydra's own
            return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return None

    def check_module(self, module: str, args: list[str]) -> str | None:
        """The module runs as `python -m` runs it, until its argparse parser has read `args`."""
        import importlib.util

        if not module.startswith("roadmap"):
            return f"-m {module}: not one of the project's modules (mark its block <!-- unchecked: why -->)"
        try:
            if importlib.util.find_spec(module) is None:
                return f"-m {module}: no such module"
        except ModuleNotFoundError as e:
            return f"-m {module}: {e}"
        argv, err = sys.argv, io.StringIO()
        sys.argv = [module, *args]
        try:
            with _stop_after_parsing(), warnings.catch_warnings(), contextlib.redirect_stderr(err), \
                    contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore", RuntimeWarning)  # runpy: "found in sys.modules"
                runpy.run_module(module, run_name="__main__", alter_sys=True)
        except _Parsed:
            return None
        except SystemExit as e:
            if e.code in (0, None):
                return None
            return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exits {e.code}"
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        finally:
            sys.argv = argv
        return None

    def check_make(self, args: list[str]) -> str | None:
        """`make -n`: the target exists and its variables are accepted. Without a GPU, the GPU targets (which stop at
        once there) are checked as their rehearsal."""
        import torch

        targets = [a for a in args if "=" not in a and not a.startswith("-")]
        if (not torch.cuda.is_available() and {"gpu-check", "gpu-roadmap"} & set(targets)
                and not any(a.startswith("REHEARSE=") for a in args)):
            args = [*args, "REHEARSE=1"]
        p = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
        if p.returncode:
            return f"make -n exits {p.returncode}: {(p.stderr.strip().splitlines() or [''])[-1]}"
        return None


def _hydra_option(group: str, option: str) -> str | None:
    """A one-line problem where Hydra's group (hydra/launcher, hydra/sweeper, ...) has no such option."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # a Hydra context someone else holds: asked as it is
        options = GlobalHydra.instance().config_loader().get_group_options(group)
    else:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            options = GlobalHydra.instance().config_loader().get_group_options(group)
    if option not in options:
        return f"{group}={option}: Hydra knows no such option; options: {', '.join(options)}"
    return None


def check_docs(texts: dict[str, str], folder: Path) -> tuple[Checker, list[str]]:
    """Check every shell block of the given Markdown texts (name -> text); files they define are written under
    `folder`. Returns the checker (problems, checked) and the reasons of the commands skipped."""
    checker, skipped = Checker(), []
    all_blocks = [b for name, text in texts.items() for b in blocks(text, name)]
    for b in all_blocks:
        if b.file:
            dest = folder / b.file
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text("\n".join(b.lines) + "\n")
            top = b.file.split("/")[0]
            checker.files[top] = folder / top
    for b in all_blocks:
        if b.lang not in SHELL_LANGS:
            continue
        lines = commands(b)
        if b.unchecked is not None:
            skipped += [f"{b.doc}:{b.line}: {b.unchecked}"] * len(lines)
            continue
        for line in lines:
            checker.check(line, f"{b.doc}:{b.line}")
    return checker, skipped


# -- the tests --------------------------------------------------------------------------------------------------------

def test_links_point_to_files_and_headings():
    problems = [p for doc in DOCS for p in link_problems(doc.read_text(encoding="utf-8"), doc)]
    assert not problems, "\n".join(problems)


def test_documented_commands_are_valid(tmp_path, capsys):
    texts = {str(d.relative_to(ROOT)): d.read_text(encoding="utf-8") for d in DOCS}
    checker, skipped = check_docs(texts, tmp_path)
    with capsys.disabled():
        print(f"\ntest_docs: {checker.checked} documented commands checked, {len(skipped)} skipped "
              f"(marked unchecked):" + "".join(f"\n  {s}" for s in dict.fromkeys(skipped)))
    assert not checker.problems, "\n".join(checker.problems)
    assert checker.checked >= 40  # the guides hold this many; a broken block parser would find none


def test_every_unchecked_mark_says_why():
    for doc in DOCS:
        for b in blocks(doc.read_text(encoding="utf-8"), doc.name):
            if b.unchecked is not None:
                assert len(b.unchecked) > 10, f"{doc.name}:{b.line}: say why the block is not checked"


def test_the_checker_reports_bad_commands(tmp_path):
    bad = {
        "python run.py +step=kernel_5 model.kernel_sizee=3": "kernel_sizee",  # a renamed override
        "python run.py +step=kernel_5 model.kernel_size=4": "kernel_size",  # a value out of range
        "python run.py +step=kernel_55": "kernel_55",  # no such step
        "python run.py -m +sweep=roadmap roadmap=convnext_q seed=0,1": "convnext_q",
        "python run.py -m +sweep=roadmap seed=0,1 hydra/launcher=paralel": "paralel",
        "python run.py -m +sweep=roadmap train.epochs=-1,2": "train.epochs",  # a sweep's first value
        "torchrun --nproc_per_node=2 run.py +step=gelu recipe=modrn": "modrn",
        "python -m roadmap.report runs --outt x": "--outt",
        "python -m roadmap.bench --compile maybe": "maybe",
        "python -m roadmap.nope": "roadmap.nope",
        "make figures": "figures",
        "make roadmap SEEDS=0": "SEEDS",
        "ray start --head": "unchecked",
    }
    for line, named in bad.items():
        checker = Checker()
        checker.check(line, "t")
        assert checker.checked == 0 and len(checker.problems) == 1, (line, checker.problems)
        assert named in checker.problems[0], (line, checker.problems)


def test_a_doc_with_a_renamed_override_fails(tmp_path):
    """A copy of a guide with one override renamed: exactly that command is reported."""
    doc = ROOT / "docs" / "getting-started.md"
    text = doc.read_text(encoding="utf-8")
    assert "model.drop_path=0.2" in text
    checker, _ = check_docs({"copy": text.replace("model.drop_path=0.2", "model.drop_paths=0.2")}, tmp_path)
    assert len(checker.problems) == 1 and "model.drop_paths" in checker.problems[0], checker.problems
    broken = text.replace("(roadmaps-and-steps.md)", "(roadmap-and-steps.md)", 1)
    assert any("roadmap-and-steps.md" in p for p in link_problems(broken, doc))
    broken = text.replace("(#one-gpu)", "(#one-gpus)", 1)
    assert any("#one-gpus" in p for p in link_problems(broken, doc))


def test_loops_and_wrappers_are_checked_inside():
    checker = Checker()
    parts = checker.segments('for k in 0 1; do CUDA_VISIBLE_DEVICES=$k python run.py +step=gelu & done; wait')
    assert parts == [["CUDA_VISIBLE_DEVICES=$k", "python", "run.py", "+step=gelu"]]
    assert checker.segments('sbatch --array=0-3 --wrap "python run.py +step=gelu seed=1"  # 4 jobs') == [
        ["python", "run.py", "+step=gelu", "seed=1"]]
    checker.check('sbatch --wrap "python run.py +step=gelu model.activation=swish"', "t")
    assert len(checker.problems) == 1 and "swish" in checker.problems[0]


def test_unchecked_and_file_marks_are_read():
    text = ("<!-- unchecked: starts a server -->\n```bash\noptuna-dashboard x\n```\n\n"
            "<!-- file: my_conf/step/a.yaml -->\n```yaml\nstep: a\n```\n```\npython run.py \\\n  +step=gelu\n```\n")
    found = blocks(text)
    assert [b.unchecked for b in found] == ["starts a server", None, None]
    assert found[1].file == "my_conf/step/a.yaml"
    assert commands(found[2]) == ["python run.py  +step=gelu"]


def _endpoint_row(results: str, step: str) -> list[str]:
    """The cells of the roadmap table's row of `step` in results.md (its top-1 cell reads `mean ± std`)."""
    for line in results.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[1] == step and "±" in cells[3]:
            return cells
    raise AssertionError(f"no roadmap row of {step} in docs/results.md")


def test_readme_numbers_are_the_reports():
    """Every number with a decimal point in the README's result is one the report wrote."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    result = readme.split("## The result", 1)[1].split("\n## ", 1)[0]
    agreement = json.loads((ROOT / "docs" / "agreement.json").read_text())
    results = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    endpoint = agreement["steps"][-1]
    expected = {
        r"With (\d+) seeds": [agreement["seeds_min"]],
        r"Spearman ρ = ([\d.]+) \(95% bootstrap interval ([\d.]+) to ([\d.]+)\)":
            [f"{agreement['spearman']:.2f}", *(f"{v:.2f}" for v in agreement["spearman_ci"])],
        r"Kendall τ = ([\d.]+)": [f"{agreement['kendall']:.2f}"],
        r"(\d+) of the (\d+) changes": [agreement["sign_agree"], agreement["sign_total"]],
        r"ConvNeXt-T reaches ([\d.]+)% top-1": [_endpoint_row(results, endpoint)[3].split("±")[0].strip()],
        r"by \+([\d.]+)\s+points": [f"{agreement['references']['swin_t']['change']:.2f}"],
    }
    covered = set()
    for pattern, values in expected.items():
        m = re.search(pattern, result)
        assert m, f"README's result no longer says {pattern!r}"
        assert list(m.groups()) == [str(v) for v in values], (pattern, m.groups(), values)
        covered |= set(m.groups())
    decimals = set(re.findall(r"\d+\.\d+", result))
    assert decimals <= covered, f"numbers in the README's result that no test checks: {decimals - covered}"
