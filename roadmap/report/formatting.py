"""How the report writes a value: numbers and intervals as the tables print them, the marks of statuses and
verdicts, a summary's missing values as text or NaN, and JSON without NaN."""

from __future__ import annotations

import math

import pandas as pd

from roadmap.report import comparison

STATUS_MARK = {"diverged": "diverged", "failed": "failed", "missing": "not run", "invalid": "not built",
               "left out": "left out"}
VERDICT_MARK = {"helps": ("▲", "forestgreen"), "hurts": ("▼", "crimson"), "unresolved": ("●", "gray"),
                "1 seed": ("", "gray"), "no pair": ("", "gray"), comparison.NOT_COMPARABLE: ("", "gray"),
                "": ("", "gray")}
BOUNDS = (0.0, 100.0)  # top-1 is a percentage: drawn intervals are clipped to it


def fmt(x, digits=2, sign=False) -> str:
    """A number as the tables print it (`digits` decimals, with its sign where `sign`); empty where there is none."""
    if x is None or pd.isna(x):
        return ""
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def interval(low, high, sign=False):
    """An interval as the tables print it: "[low, high]" (empty where there is none)."""
    return "" if pd.isna(low) else f"[{fmt(low, sign=sign)}, {fmt(high, sign=sign)}]"


def as_text(x, default: str = "") -> str:
    """A summary's value as text: `default` where it is missing (None, NaN or empty)."""
    return default if x is None or (isinstance(x, float) and math.isnan(x)) or x == "" else str(x)


def as_float(x) -> float:
    """A summary's value as a float: NaN where it is missing."""
    return math.nan if x is None or pd.isna(x) else float(x)


def optional_float(x) -> float | None:
    """A summary's value as a float: None where it is missing."""
    return None if x is None or pd.isna(x) else float(x)


def strict_json(value):
    """`value` with every NaN or infinity as None: json.dumps(..., allow_nan=False) then writes null, and the file
    is JSON any parser reads."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
