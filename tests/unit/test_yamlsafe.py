"""The YAML reader: line numbers kept, what people never need refused."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from relais.yamlsafe import MAX_BYTES, YamlFileError, YamlProblem, line_of, parse_text, read_yaml


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
    with pytest.raises(YamlProblem) as caught:
        parse_text(text)
    assert caught.value.line == line
    assert words in caught.value.message


def test_alias_bomb_is_refused_before_it_costs_memory() -> None:
    levels = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 8):
        levels.append(f"a{i}: &a{i} [" + ",".join([f"*a{i-1}"] * 10) + "]")
    with pytest.raises(YamlProblem, match="expands to more than"):
        parse_text("\n".join(levels) + "\n")


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

    with pytest.raises(YamlFileError, match="cannot read"):
        read_yaml(tmp_path / "absent.yaml", "absent.yaml")
