"""The wheelhouse: pinned, binary for the hosts' platform, cached, reproducibly packed."""

from __future__ import annotations

from pathlib import Path

import pytest

from relais import wheelhouse


def test_download_is_binary_for_the_hosts_python(tmp_path: Path) -> None:
    command = wheelhouse.download_command(tmp_path)
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.11"
    assert command[-1] == f"matrix-synapse=={wheelhouse.SYNAPSE_VERSION}"
    assert "manylinux_2_28_x86_64" in command
    build = wheelhouse.build_psycopg2_command(tmp_path)
    assert build[-1] == f"psycopg2=={wheelhouse.PSYCOPG2_VERSION}" and "--no-deps" in build


def test_cache_is_keyed_by_the_pins(tmp_path: Path) -> None:
    root = wheelhouse.cache_root({"XDG_CACHE_HOME": str(tmp_path)})
    assert root == tmp_path / "relais" / "wheelhouse"
    assert wheelhouse.cache_key() == (f"synapse-{wheelhouse.SYNAPSE_VERSION}-psycopg2-"
                                      f"{wheelhouse.PSYCOPG2_VERSION}-cp311")
    assert wheelhouse.cache_key(synapse="1.0.0") != wheelhouse.cache_key()


def test_a_cached_wheelhouse_is_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "relais" / "wheelhouse"
    (root / wheelhouse.cache_key()).mkdir(parents=True)
    (root / f"{wheelhouse.cache_key()}.tar").write_bytes(b"x")
    monkeypatch.setattr(wheelhouse.subprocess, "run", lambda *a, **k: pytest.fail("rebuilt"))
    house = wheelhouse.ensure({"XDG_CACHE_HOME": str(tmp_path)})
    assert house.directory == root / wheelhouse.cache_key()
    assert house.requirements() == [f"matrix-synapse=={wheelhouse.SYNAPSE_VERSION}",
                                     f"psycopg2=={wheelhouse.PSYCOPG2_VERSION}"]


def test_pack_is_reproducible(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / ("a" * 120 + "-1.0-py3-none-any.whl")).write_bytes(b"one")  # long names are fine
    (wheels / "b-1.0-py3-none-any.whl").write_bytes(b"two")
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    wheelhouse.pack(wheels, first)
    (wheels / "b-1.0-py3-none-any.whl").touch()  # a newer mtime changes nothing
    wheelhouse.pack(wheels, second)
    assert first.read_bytes() == second.read_bytes()
    assert wheelhouse.digest(first) == wheelhouse.digest(second)
