"""YAML reading that keeps line numbers and refuses what a hand-written file never needs.

PyYAML's safe loader silently keeps the last of two duplicate keys and expands
aliases without bound. Declarations are written by people, so both are errors
here, and every value keeps the line it came from so that later validation can
point at it.

This runs once per commune file, so for the whole of France about 35,000
times per `relais validate`; the hot path is kept lean (see
docs/performance.md): libyaml composes the nodes, a resolver that answers
plain text without regular expressions tags them, and one recursive pass
builds the data and its line map.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from relais.errors import Problem

try:
    _Base: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader

Path_ = tuple[str | int, ...]
LineMap = dict[Path_, int]
Lines = Mapping[Path_, int]
"""What reads line numbers accepts: a LineMap, or the LazyLines of a file read for its data."""

MAX_BYTES = 1_000_000
MAX_NODES = 20_000
MAX_DEPTH = 32

_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"

# First characters for which YAML 1.1 may read a plain scalar as something other
# than text (null, bool, int, float, timestamp, merge, value, yaml). Any other
# first character means text: the regular expressions need not run.
_RESOLVERS: dict[Any, list[tuple[str, Any]]] = _Base.yaml_implicit_resolvers
_MAYBE_TYPED = frozenset(k for k in _RESOLVERS if k is not None)
# Plain scalars that start with one of those characters repeat a lot (keys such as
# `name` or `tenant`, `1y`, `180d`, `version: 1`): remember their tag, up to a bound.
_TAG_MEMO: dict[str, str] = {}
_TAG_MEMO_MAX = 8192
_resolve_by_regex: Callable[[Any, type[Node], str, tuple[bool, bool]], str] = BaseResolver.resolve


class YamlProblem(Exception):
    """Raised internally; the loader turns it into a located :class:`Problem`."""

    def __init__(self, line: int | None, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """The safe loader, with the same tags resolved faster.

    PyYAML's `resolve` tries regular expressions on every plain scalar and calls
    the path resolvers around every node; the safe loader has no path resolvers
    and no wildcard implicit resolvers, so neither can change a tag here.
    """

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is ScalarNode:
            if implicit[0] and value[:1] in _MAYBE_TYPED:
                tag = _TAG_MEMO.get(value)
                if tag is None:
                    tag = _resolve_by_regex(self, kind, value, implicit)
                    if len(_TAG_MEMO) < _TAG_MEMO_MAX:
                        _TAG_MEMO[value] = tag
                return tag
            return _STR_TAG
        if kind is MappingNode:
            return _MAP_TAG
        return _SEQ_TAG

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


# Only valid while nobody adds path or wildcard resolvers to PyYAML's safe loader.
_Parser: type[yaml.SafeLoader] = (
    _Base if _Base.yaml_path_resolvers or None in _RESOLVERS else _Loader  # pragma: no cover
)


class _Builder:
    """Plain data and its line map from a node tree, in one depth-first pass.

    Every value counts towards MAX_NODES (an aliased node once per use, which
    stops "billion laughs" documents before they cost memory) and the checks
    run in document order, so the first problem reported is the first met.
    """

    __slots__ = ("count", "lines")

    def __init__(self) -> None:
        self.lines: LineMap = {}
        self.count = 0

    def _too_many(self, node: Node) -> YamlProblem:
        return YamlProblem(
            node.start_mark.line + 1,
            f"document expands to more than {MAX_NODES} values",
            "anchors and aliases that multiply content are refused; write values out",
        )

    def build(self, node: Node, path: Path_, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._too_many(node)
        if depth > MAX_DEPTH:
            raise YamlProblem(node.start_mark.line + 1, f"nesting deeper than {MAX_DEPTH} levels")
        lines = self.lines
        if path not in lines:
            lines[path] = node.start_mark.line + 1
        cls = node.__class__
        if cls is ScalarNode:
            return node.value if node.tag == _STR_TAG else _scalar(node)
        child_depth = depth + 1
        if cls is MappingNode:
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _STR_TAG and key_node.__class__ is ScalarNode:
                    key = key_node.value
                else:
                    key = _key(key_node)
                if key in result:
                    first = lines.get((*path, key))
                    raise YamlProblem(
                        key_node.start_mark.line + 1,
                        f"duplicate key {key!r}" + (f" (first at line {first})" if first else ""),
                        "a key may appear once per mapping; merge the two entries",
                    )
                child = (*path, key)
                lines[child] = key_node.start_mark.line + 1
                if value_node.__class__ is ScalarNode and value_node.tag == _STR_TAG:
                    # Inlined `build` of a text value (its line is its key's, set above).
                    self.count += 1
                    if self.count > MAX_NODES:
                        raise self._too_many(value_node)
                    if child_depth > MAX_DEPTH:
                        raise YamlProblem(value_node.start_mark.line + 1,
                                          f"nesting deeper than {MAX_DEPTH} levels")
                    result[key] = value_node.value
                else:
                    result[key] = self.build(value_node, child, child_depth)
            return result
        if cls is SequenceNode:
            build = self.build
            return [build(item, (*path, i), child_depth) for i, item in enumerate(node.value)]
        raise YamlProblem(node.start_mark.line + 1, "unsupported YAML node")  # pragma: no cover

    def data(self, node: Node, depth: int) -> Any:
        """`build` without the line map: the same data, or None at the first problem.

        Most files are read only for their data: their lines matter only when something
        in them is wrong, and then the file is parsed again with `build`, which reports
        the problem itself. Skipping the map (a tuple and a dict entry per value) makes
        this pass twice as fast.
        """
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            return _FAILED
        cls = node.__class__
        if cls is ScalarNode:
            if node.tag == _STR_TAG:
                return node.value
            try:
                return _scalar(node)
            except YamlProblem:
                return _FAILED
        child_depth = depth + 1
        if cls is MappingNode:
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _STR_TAG and key_node.__class__ is ScalarNode:
                    key = key_node.value
                else:
                    try:
                        key = _key(key_node)
                    except YamlProblem:
                        return _FAILED
                if key in result:
                    return _FAILED
                if value_node.__class__ is ScalarNode and value_node.tag == _STR_TAG:
                    self.count += 1
                    if self.count > MAX_NODES or child_depth > MAX_DEPTH:
                        return _FAILED
                    result[key] = value_node.value
                else:
                    value = self.data(value_node, child_depth)
                    if value is _FAILED:
                        return _FAILED
                    result[key] = value
            return result
        if cls is SequenceNode:
            items = []
            for item in node.value:
                value = self.data(item, child_depth)
                if value is _FAILED:
                    return _FAILED
                items.append(value)
            return items
        return _FAILED  # pragma: no cover


_FAILED: Any = object()
"""What `_Builder.data` returns when the document has a problem (`build` then names it)."""


def _key(key_node: Node) -> str:
    """A mapping key that is not plain text: an integer is accepted (as text), nothing else."""
    if key_node.tag == _MERGE_TAG:
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
    return str(key)


_SCALAR_LOADER = _Base("")

# The implicit scalar types, built directly (what `construct_object` would call)
# rather than through `construct_object`, which also remembers every node it built.
_SCALAR_CONSTRUCTORS: dict[str, Callable[[Any, Node], Any]] = {
    tag: constructor
    for tag, constructor in (
        ("tag:yaml.org,2002:null", SafeConstructor.construct_yaml_null),
        ("tag:yaml.org,2002:bool", SafeConstructor.construct_yaml_bool),
        ("tag:yaml.org,2002:int", SafeConstructor.construct_yaml_int),
        ("tag:yaml.org,2002:float", SafeConstructor.construct_yaml_float),
        ("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_timestamp),
    )
    if _Base.yaml_constructors.get(tag) is constructor
}


def _scalar(node: Node) -> Any:
    tag = node.tag
    if tag == _STR_TAG:  # most values: no constructor needed
        return node.value
    loader = _SCALAR_LOADER
    try:
        constructor = _SCALAR_CONSTRUCTORS.get(tag)
        if constructor is not None:
            return constructor(loader, node)
        try:
            return loader.construct_object(node, deep=True)
        finally:
            loader.constructed_objects.clear()
            loader.recursive_objects.clear()
    except yaml.YAMLError as exc:
        raise YamlProblem(node.start_mark.line + 1, f"unreadable value: {exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. a date such as 2024-02-30
        raise YamlProblem(
            node.start_mark.line + 1, f"unreadable value {node.value!r}: {exc}",
            "quote it if it is meant as text",
        ) from None
    except (TypeError, KeyError, IndexError, AttributeError):
        # An explicit tag on text of another type (`!!bool maybe`, `!!int ""`,
        # `!!timestamp x`): PyYAML's constructors fail with Python errors there.
        raise YamlProblem(
            node.start_mark.line + 1,
            f"unreadable value {node.value!r}: not a valid {tag.rsplit(':', 1)[-1]}",
            "quote it if it is meant as text",
        ) from None


def parse_text(text: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; return the plain data and its line map."""
    node = _compose(text)
    if node is None:
        return None, {}
    builder = _Builder()
    try:
        data = builder.build(node, (), 0)
    except RecursionError:
        raise YamlProblem(node.start_mark.line + 1, "recursive aliases are not supported") from None
    return data, builder.lines


def parse_data(text: str) -> Any:
    """:func:`parse_text` without the line map: the same data, or the same YamlProblem."""
    node = _compose(text)
    if node is None:
        return None
    try:
        data = _Builder().data(node, 0)
    except RecursionError:
        data = _FAILED
    if data is _FAILED:  # parse again with lines, to report the problem where it is
        return parse_text(text)[0]
    return data


def _compose(text: str) -> Node | None:
    try:
        loader = _Parser(text)
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
    return node


def read_yaml(path: Path | str, display: str) -> tuple[Any, LineMap]:
    """Read a YAML file as UTF-8, raising a located :class:`Problem` on any defect."""
    return decode_and_parse(_read_bytes(path, display), display)


def read_yaml_data(path: Path | str, display: str) -> Any:
    """:func:`read_yaml` without the line map (see `LazyLines` for when lines are needed)."""
    return _parse(_decode(_read_bytes(path, display), display), display, parse_data)


def read_bounded(stream: BinaryIO, limit: int) -> bytes:
    """The stream's bytes, or its first `limit` + 1 and more when it is longer: enough to say
    "too large" without reading the rest (a file linked to /dev/zero costs nothing).

    Read by blocks: `read(limit + 1)` would allocate the whole limit for every small file."""
    block = stream.read(_BLOCK)
    if len(block) < _BLOCK:  # the end of a file: nearly always, at the first read
        return block
    blocks = [block]
    size = len(block)
    while size <= limit:
        block = stream.read(_BLOCK)
        if not block:
            break
        blocks.append(block)
        size += len(block)
    return b"".join(blocks)


_BLOCK = 1 << 16


def _read_bytes(path: Path | str, display: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return read_bounded(stream, MAX_BYTES)
    except OSError as exc:
        raise _problem(display, None, f"cannot read file: {exc.strerror}") from None


def decode_and_parse(raw: bytes, display: str) -> tuple[Any, LineMap]:
    """:func:`read_yaml` on bytes already read."""
    result: tuple[Any, LineMap] = _parse(_decode(raw, display), display, parse_text)
    return result


def _decode(raw: bytes, display: str) -> str:
    if len(raw) > MAX_BYTES:
        raise _problem(display, None, f"file is larger than {MAX_BYTES // 1000} kB",
                       "a declaration file is a few kB; is this the right file?")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _problem(
            display, line, "file is not valid UTF-8",
            "save it as UTF-8 (Latin-1 and Windows-1252 files show accents this way)",
        ) from None
    if "\x00" in text:
        raise _problem(display, text[: text.index("\x00")].count("\n") + 1,
                       "file contains a NUL byte", "is this a binary file?")
    return text


def _parse(text: str, display: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text)
    except YamlProblem as exc:
        raise _problem(display, exc.line, exc.message, exc.hint) from None


class YamlFileError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _problem(file: str, line: int | None, message: str, hint: str | None = None) -> YamlFileError:
    return YamlFileError(Problem(file, line, "", message, None, hint))


class LazyLines(Mapping[Path_, int]):
    """The line map of a file read with `read_yaml_data`, made on first use.

    Lines serve only to point at problems, so for the many files with none the map is
    never made. The file is parsed again when it is; if it changed or went away in
    between, the map is empty and problems are reported without a line.
    """

    __slots__ = ("_display", "_lines", "_path")

    def __init__(self, path: Path | str, display: str) -> None:
        self._path = path
        self._display = display
        self._lines: LineMap | None = None

    def _map(self) -> LineMap:
        if self._lines is None:
            try:
                self._lines = read_yaml(self._path, self._display)[1]
            except YamlFileError:
                self._lines = {}
        return self._lines

    def __getitem__(self, loc: Path_) -> int:
        return self._map()[loc]

    def __iter__(self) -> Iterator[Path_]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


def line_of(lines: Lines, loc: Path_) -> int | None:
    """Line of the deepest known prefix of `loc`."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return None
