"""The YAML reader: line numbers kept, what people never need refused."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from relais.yamlsafe import (
    MAX_BYTES,
    LazyLines,
    YamlFileError,
    YamlProblem,
    line_of,
    parse_data,
    parse_text,
    read_yaml,
    read_yaml_data,
)


def test_values_and_lines() -> None:
    data, lines = parse_text('a: 1\nb:\n  - x\n  - {c: "14118"}\nd: 2024-01-31\n')
    assert data == {"a": 1, "b": ["x", {"c": "14118"}], "d": datetime.date(2024, 1, 31)}
    assert lines[("b", 1, "c")] == 4
    assert line_of(lines, ("b", 1, "missing", 3)) == 4


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first at line 1)"),
        ("a: [1, 2\n", 2, "not valid YAML"),
        ("<<: {a: 1}\n", 1, "merge keys"),
        ("? [a, b]\n: 1\n", 1, "a key must be a plain word"),
        ("a: &x [*x]\n", 1, "nesting deeper"),
        ("x: " + "[" * 40 + "]" * 40 + "\n", 1, "nesting deeper"),
    ],
)
def test_refused_documents(text: str, line: int, words: str) -> None:
    for parse in (lambda t: parse_text(t)[0], parse_data):  # with and without the line map
        with pytest.raises(YamlProblem) as caught:
            parse(text)
        assert caught.value.line == line
        assert words in caught.value.message


@pytest.mark.parametrize("text", [
    'a: 1\nb:\n  - x\n  - {c: "14118", d: [yes, ~, 1.5, 0o17, 2024-01-31]}\n',
    "a: &x {b: [1, 2]}\nc: *x\n12: twelve\n", "- a\n- [b, {c: d}]\n", "just text\n", "",
    "# only a comment\n", "a: 2024-02-30\n", "a: !!int x\n",
])
def test_data_without_lines_is_the_same_data(text: str) -> None:
    try:
        expected = parse_text(text)[0]
    except YamlProblem as problem:
        with pytest.raises(YamlProblem) as caught:
            parse_data(text)
        assert (caught.value.line, caught.value.message) == (problem.line, problem.message)
    else:
        assert parse_data(text) == expected


def test_lazy_lines_are_read_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\ntenant:\n  flavor: xmpp\n")
    assert read_yaml_data(path, "c.yaml") == {"version": 1, "tenant": {"flavor": "xmpp"}}
    lines = LazyLines(path, "c.yaml")
    path.write_text("version: 1\n\ntenant:\n  flavor: xmpp\n")  # not read yet: read as it is now
    assert line_of(lines, ("tenant", "flavor", 3)) == 4
    path.unlink()  # read once: kept
    assert lines[("tenant",)] == 3 and len(lines) == 4
    assert dict(LazyLines(path, "c.yaml")) == {}  # gone: no lines, no error


def test_alias_bomb_is_refused_before_it_costs_memory() -> None:
    levels = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 8):
        levels.append(f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 10) + "]")
    with pytest.raises(YamlProblem, match="expands to more than"):
        parse_text("\n".join(levels) + "\n")
    with pytest.raises(YamlProblem, match="expands to more than"):
        parse_data("\n".join(levels) + "\n")


def test_files(tmp_path: Path) -> None:
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfa: b\n")
    assert read_yaml(bom, "bom.yaml")[0] == {"a": "b"}

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("a: b\nname: Hérouville\n".encode("latin-1"))
    with pytest.raises(YamlFileError) as caught:
        read_yaml(latin1, "latin1.yaml")
    assert (caught.value.problem.line, caught.value.problem.file) == (2, "latin1.yaml")
    assert "UTF-8" in caught.value.problem.message

    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"a: b\n\x00\n")
    with pytest.raises(YamlFileError, match="NUL"):
        read_yaml(nul, "nul.yaml")

    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(YamlFileError, match="larger than"):
        read_yaml(huge, "huge.yaml")

    endless = tmp_path / "endless.yaml"
    endless.symlink_to("/dev/zero")  # a file that never ends is refused, not read to the end
    with pytest.raises(YamlFileError, match="larger than"):
        read_yaml(endless, "endless.yaml")
    with pytest.raises(YamlFileError, match="larger than"):
        read_yaml_data(endless, "endless.yaml")

    with pytest.raises(YamlFileError, match="cannot read"):
        read_yaml(tmp_path / "absent.yaml", "absent.yaml")
