"""The official list of communes: import, lookups, kinds of entries, integrity."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from relais import referential
from relais.errors import ReferentialError
from relais.referential import Referential, normalize, slugify

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "communes-subset.json"


def test_current_commune_lookup(ref: Referential) -> None:
    caen = ref.current("14118")
    assert caen is not None
    assert (caen.name, caen.siren, caen.departement, caen.region) == ("Caen", "211401187", "14", "28")
    assert "14000" in caen.postal_codes


def test_corsica_and_overseas_codes(ref: Referential) -> None:
    ajaccio = ref.current("2A004")
    assert ajaccio is not None and ajaccio.name == "Ajaccio" and ajaccio.departement == "2A"
    bastia = ref.current("2B033")
    assert bastia is not None and bastia.departement == "2B"
    reunion = ref.current("97411")
    assert reunion is not None and reunion.departement == "974"
    spm = ref.current("97501")  # Saint-Pierre-et-Miquelon: no SIREN in the dataset
    assert spm is not None and spm.siren is None


def test_non_current_entries_name_their_commune(ref: Referential) -> None:
    assert ref.current("75101") is None
    arrondissement = ref.non_current("75101")[0]
    assert arrondissement.kind == "arrondissement-municipal" and arrondissement.parent == "75056"
    delegated = ref.non_current("50001")[0]
    assert delegated.kind == "commune-deleguee" and delegated.parent == "50041"


def test_code_shared_by_a_current_and_a_delegated_commune(ref: Referential) -> None:
    current = ref.current("01015")
    assert current is not None and current.is_current
    assert [c.kind for c in ref.non_current("01015")] == ["commune-deleguee"]


@pytest.mark.parametrize(
    ("query", "first"),
    [("Saint-Lô", "50502"), ("saint lo", "50502"), ("SAINT-LO", "50502"), ("50000", "50502"),
     ("14118", "14118"), ("2a004", "2A004"), ("herouville", "14327"), ("Bayeu", "14047")],
)
def test_search(ref: Referential, query: str, first: str) -> None:
    assert ref.search(query)[0].insee == first


def test_search_nothing(ref: Referential) -> None:
    assert ref.search("zzzzqqq") == []
    assert ref.search("   ") == []


def test_normalize_and_slugify() -> None:
    assert normalize("Hérouville-Saint-Clair") == normalize("herouville saint clair")
    assert normalize("L'Haÿ-les-Roses") == "l hay les roses"
    assert slugify("Château-Chinon (Ville)") == "chateau-chinon-ville"
    assert slugify("Œuilly") == "oeuilly"
    assert len(slugify("a" * 100)) == 63


def test_missing_cache_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ReferentialError) as caught:
        referential.load()
    assert "relais communes fetch" in (caught.value.hint or "")
    assert "relais communes import" in (caught.value.hint or "")


def test_corrupt_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    referential.cache_path().parent.mkdir(parents=True)
    referential.cache_path().write_text("{not json")
    with pytest.raises(ReferentialError, match="unreadable"):
        referential.load()


def test_import_rejects_other_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ReferentialError, match=r"not Etalab's communes\.json"):
        referential.import_file(other)


def _tarball(communes_json: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(referential.COMMUNES_MEMBER)
        info.size = len(communes_json)
        archive.addfile(info, io.BytesIO(communes_json))
    return buffer.getvalue()


def test_import_tarball_checks_the_pinned_integrity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    forged = tmp_path / "decoupage-administratif.tgz"
    forged.write_bytes(_tarball(FIXTURE.read_bytes()))
    with pytest.raises(ReferentialError, match="integrity"):
        referential.import_file(forged)


def test_integrity_check_accepts_the_right_hash() -> None:
    data = _tarball(FIXTURE.read_bytes())
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    referential._check_integrity(data, integrity)
    assert gzip.decompress(data)  # a real gzip stream
