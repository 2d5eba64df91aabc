"""A function run in a forked child (relais.forked.Background): its result, or the function
run again here when the child cannot give one, and no child left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from policies import catalog
from policies.registre import load_retentions
from relais.errors import RelaisError
from relais.forked import Background


def no_child_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_result_comes_from_the_child() -> None:
    parent = os.getpid()
    work = Background(lambda: (os.getpid(), os.nice(0), {"a": [1, 2]}), nice=5)
    pid, niceness, data = work.result()
    assert pid != parent and niceness >= os.nice(0) + 5 and data == {"a": [1, 2]}
    assert no_child_left()


def test_without_fork_the_function_runs_here_when_asked() -> None:
    calls: list[int] = []
    work = Background(lambda: calls.append(os.getpid()) or len(calls), fork=False)
    assert calls == []
    assert work.result() == 1 and calls == [os.getpid()]


def test_an_error_in_the_child_is_raised_here() -> None:
    def fails() -> int:
        raise RelaisError(f"register broken (in {os.getpid()})")

    with pytest.raises(RelaisError, match=f"in {os.getpid()}"):  # raised by this process
        Background(fails).result()
    assert no_child_left()


def test_a_killed_child_is_replaced_by_this_process() -> None:
    parent = os.getpid()

    def dies_in_the_child() -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), 9)
        return os.getpid()

    assert Background(dies_in_the_child).result() == parent
    assert no_child_left()


def test_close_stops_a_child_whose_result_is_not_needed() -> None:
    work = Background(lambda: [os.pause()])  # never returns on its own
    work.close()
    assert no_child_left()
    work.close()  # twice: nothing left to do


def write_registers(folder: Path, count: int) -> None:
    folder.mkdir()
    for i in range(count):
        insee = f"{14000 + i}"
        (folder / f"{insee}-x.json").write_text(json.dumps({
            "commune": {"insee": insee},
            "durees_conservation": {"messages_jours": 100 + i, "journaux_jours": 365, "sauvegardes_jours": 180}}))


def test_registers_read_in_a_child_are_those_read_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_registers(tmp_path / "registre", 30)
    monkeypatch.setenv("RELAIS_WORKERS", "2")
    monkeypatch.setattr(catalog, "BACKGROUND_MIN_REGISTERS", 10)
    work = catalog.read_registers(tmp_path)
    assert work._pid  # forked: 30 files, from 10 on
    assert work.result() == load_retentions(tmp_path / "registre")
    (tmp_path / "registre" / "14003-x.json").write_text("{")
    with pytest.raises(RelaisError, match=r"registre/14003-x\.json: not a register entry"):
        catalog.read_registers(tmp_path).result()
    assert catalog.read_registers(tmp_path / "nowhere").result() is None
    assert no_child_left()


def test_bytes_come_back_as_they_are() -> None:
    parent = os.getpid()
    text = "é" * 300_000  # more than a pipe holds: the child writes while this process reads
    work = Background(lambda: (text + str(os.getpid() != parent)).encode("utf-8"))
    assert work.result() == (text + "True").encode("utf-8")
    assert no_child_left()


def test_a_register_entry_that_never_ends_is_refused(tmp_path: Path) -> None:
    write_registers(tmp_path / "registre", 2)
    (tmp_path / "registre" / "14005-x.json").symlink_to("/dev/zero")
    with pytest.raises(RelaisError, match=r"14005-x\.json: not a register entry .*larger than 1000 kB"):
        load_retentions(tmp_path / "registre")
