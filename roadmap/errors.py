"""The project's exceptions for bad input (torch-free, so every module can raise them, and defined where no module
runs as `__main__`: `python -m roadmap.report` and the modules it imports share one class)."""

import argparse


class ConfigError(ValueError):
    """A bad configuration value, reported in one line naming the field and what is allowed."""


class ReportError(ValueError):
    """Bad input for the report: `python -m roadmap.report` prints it in one line and exits 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse for the project's command lines: a bad argument is one line, `error: <what>`, and exit code 2 (the
    usage is left to --help)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def path_argument(text: str):
    """A command line's path argument (argparse `type=`): an empty one (an unset shell variable) is refused, never
    taken as the current folder."""
    from pathlib import Path

    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)
