"""Fixtures shared by every test: a referential from real Etalab data, an inventory copy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from relais import referential

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SHIPPED_INVENTORY = ROOT / "inventory"


@pytest.fixture(scope="session")
def referential_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An XDG cache holding a subset of the official list (real entries of Etalab's dataset,
    enough for the example region and the edge cases), so unit tests need no network."""
    cache = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        patch.delenv("RELAIS_REFERENTIAL", raising=False)
        referential.import_file(FIXTURES / "communes-subset.json")
        yield cache


@pytest.fixture
def ref(referential_cache: Path, monkeypatch: pytest.MonkeyPatch) -> referential.Referential:
    monkeypatch.setenv("XDG_CACHE_HOME", str(referential_cache))
    return referential.load()


@pytest.fixture
def inventory_dir(tmp_path: Path, ref: referential.Referential) -> Path:
    """A private copy of the shipped example region (tests may write its lock)."""
    target = tmp_path / "inventory"
    shutil.copytree(SHIPPED_INVENTORY, target, ignore=shutil.ignore_patterns("secrets"))
    return target
