"""YAML reading that keeps line numbers and refuses what a hand-written file never needs.

PyYAML's safe loader silently keeps the last of two duplicate keys and expands
aliases without bound. Declarations are written by people, so both are errors
here, and every value keeps the line it came from so that later validation can
point at it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from relais.errors import Problem

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]
LineMap = dict[Path_, int]

MAX_BYTES = 1_000_000
MAX_NODES = 20_000
MAX_DEPTH = 32


class YamlProblem(Exception):
    """Raised internally; the loader turns it into a located :class:`Problem`."""

    def __init__(self, line: int | None, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


class _Builder:
    def __init__(self) -> None:
        self.lines: LineMap = {}
        self.count = 0
        # Aliased nodes are built once per use; counting every use stops
        # "billion laughs" documents before they cost memory.

    def build(self, node: Node, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlProblem(
                node.start_mark.line + 1,
                f"document expands to more than {MAX_NODES} values",
                "anchors and aliases that multiply content are refused; write values out",
            )
        if depth > MAX_DEPTH:
            raise YamlProblem(node.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, ScalarNode):
            return _scalar(node)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlProblem(
                        key_node.start_mark.line + 1,
                        "merge keys (<<) are not supported",
                        "write the keys out in full",
                    )
                if not isinstance(key_node, ScalarNode):
                    raise YamlProblem(key_node.start_mark.line + 1, "a key must be a plain word")
                key = _scalar(key_node)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise YamlProblem(
                        key_node.start_mark.line + 1,
                        f"key {key_node.value!r} must be a word",
                        "quote it if it is meant as text",
                    )
                key = str(key)
                if key in result:
                    first = self.lines.get((*path, key))
                    raise YamlProblem(
                        key_node.start_mark.line + 1,
                        f"duplicate key {key!r}" + (f" (first at line {first})" if first else ""),
                        "a key may appear once per mapping; merge the two entries",
                    )
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, (*path, key), depth + 1)
            return result
        raise YamlProblem(node.start_mark.line + 1, "unsupported YAML node")  # pragma: no cover


_SCALAR_LOADER = _Loader("")


_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(node: ScalarNode) -> Any:
    if node.tag == _STR_TAG:  # most values: no constructor needed
        return node.value
    try:
        return _SCALAR_LOADER.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise YamlProblem(node.start_mark.line + 1, f"unreadable value: {exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date such as 2024-02-30
        raise YamlProblem(
            node.start_mark.line + 1, f"unreadable value {node.value!r}: {exc}",
            "quote it if it is meant as text",
        ) from None


def parse_text(text: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; return the plain data and its line map."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlProblem(line, f"not valid YAML: {exc.problem or exc}", None) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, f"not valid YAML: {exc}") from None
    if node is None:
        return None, {}
    builder = _Builder()
    try:
        data = builder.build(node, (), 0)
    except RecursionError:
        raise YamlProblem(node.start_mark.line + 1, "recursive aliases are not supported") from None
    return data, builder.lines


def read_yaml(path: Path, display: str) -> tuple[Any, LineMap]:
    """Read a YAML file as UTF-8, raising a located :class:`Problem` on any defect."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _problem(display, None, f"cannot read file: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise _problem(display, None, f"file is larger than {MAX_BYTES // 1000} kB",
                       "a declaration file is a few kB; is this the right file?")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _problem(display, line, "file is not valid UTF-8",
                       "save it as UTF-8 (Latin-1 and Windows-1252 files show accents this way)") from None
    if "\x00" in text:
        raise _problem(display, text[: text.index("\x00")].count("\n") + 1,
                       "file contains a NUL byte", "is this a binary file?")
    try:
        return parse_text(text)
    except YamlProblem as exc:
        raise _problem(display, exc.line, exc.message, exc.hint) from None


class YamlFileError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _problem(file: str, line: int | None, message: str, hint: str | None = None) -> YamlFileError:
    return YamlFileError(Problem(file, line, "", message, None, hint))


def line_of(lines: LineMap, loc: Path_) -> int | None:
    """Line of the deepest known prefix of `loc`."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None
