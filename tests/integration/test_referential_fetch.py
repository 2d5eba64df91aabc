"""The official list of communes fetched for real: npm, by package name, as the machine is set up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relais import referential


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RELAIS_REFERENTIAL", raising=False)
    return tmp_path


def test_fetch_verifies_and_caches_every_commune_of_france(empty_cache: Path) -> None:
    path = referential.fetch()
    assert path.is_relative_to(empty_cache)
    ref = referential.load()
    assert ref.version == referential.PINNED_VERSION
    assert 34_000 < len(ref) < 36_000
    assert ref.current("14118") is not None and ref.current("97411") is not None
    assert ref.current("2A004") is not None
    assert ref.current("75101") is None and ref.non_current("75101")


def test_validate_fetches_on_first_use(empty_cache: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(empty_cache)}
    inventory = Path(__file__).resolve().parents[2] / "inventory"
    result = subprocess.run([sys.executable, "-m", "relais", "-i", str(inventory), "validate"],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert referential.cache_path().is_file()


def test_fetch_without_npm_says_what_to_do(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(empty_cache))
    with pytest.raises(referential.ReferentialError) as caught:
        referential.fetch()
    assert "relais communes import" in (caught.value.hint or "")
