"""Sizes and durations as people write them in declarations: `8GiB`, `180d`, `3y`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

MiB = 1
_SIZE_UNITS = {"MiB": 1, "GiB": 1024, "TiB": 1024 * 1024, "MB": 1, "GB": 1024, "TB": 1024 * 1024}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")
_DURATION_UNITS = {"d": 1, "w": 7, "m": 30, "y": 365}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([dwmy])\s*$")


def parse_size_mib(value: Any) -> int:
    """`8GiB` -> 8192 (MiB). Plain integers are refused: the unit is never implied."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"a size with a unit, e.g. {value}GiB")
    if not isinstance(value, str):
        raise ValueError("a size such as 512MiB, 8GiB or 1TiB")
    match = _SIZE_RE.match(value)
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"a size such as 512MiB, 8GiB or 1TiB, got {value!r}")
    mib = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if mib <= 0:
        raise ValueError("a size greater than zero")
    return int(mib)


def parse_duration_days(value: Any) -> int:
    """`180d` -> 180, `3y` -> 1095, `6m` -> 180, `2w` -> 14."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"a duration with a unit, e.g. {value}d")
    if not isinstance(value, str):
        raise ValueError("a duration such as 180d, 12w, 6m or 3y")
    match = _DURATION_RE.match(value)
    if not match:
        raise ValueError(f"a duration such as 180d, 12w, 6m or 3y, got {value!r}")
    days = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if days <= 0:
        raise ValueError("a duration greater than zero")
    return days


def format_mib(mib: int) -> str:
    if mib >= 1024 * 1024 and mib % (1024 * 1024) == 0:
        return f"{mib // (1024 * 1024)}TiB"
    if mib >= 1024 and mib % 1024 == 0:
        return f"{mib // 1024}GiB"
    if mib >= 1024:
        return f"{mib / 1024:.1f}GiB"
    return f"{mib}MiB"


SizeMiB = Annotated[int, BeforeValidator(parse_size_mib)]
Days = Annotated[int, BeforeValidator(parse_duration_days), PlainSerializer(lambda d: d)]
