"""The portal's security properties: CSRF, size limits, strict fields, rate limits, headers, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from relais import requests as req
from relais.portal import PortalConfig, create_app
from relais.portal.app import CSP
from relais.portal.ratelimit import Limit, RateLimiter
from relais.referential import Referential

VALID = {
    "commune": "Lisieux — 14366 (dép. 14)", "flavor": "matrix-dedicated", "domain_choice": "own",
    "own_domain": "lisieux.fr", "agents-0-name": "Camille Martin", "agents-0-email": "c.martin@lisieux.fr",
    "mairie_email": "mairie@lisieux.fr", "dpo_name": "Centre de gestion du Calvados",
    "dpo_email": "dpo@cdg14.fr", "retention_messages": "1y", "retention_logs": "180d",
    "requester_name": "Sophie Durand", "requester_role": "Secrétaire de mairie",
    "requester_email": "s.durand@lisieux.fr", "requester_phone": "02 31 00 00 00",
    "message": "Merci !", "seats": "5",
}


def make_app(inventory: Path, ref: Referential, **limits: Limit) -> Flask:
    config = PortalConfig()
    config.limits.update(limits)
    return create_app(inventory, ref, config)


@pytest.fixture
def app(inventory_dir: Path, ref: Referential) -> Flask:
    return make_app(inventory_dir, ref)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def token(client: FlaskClient) -> str:
    page = client.get("/demande")
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def requests_written(inventory: Path) -> list[Path]:
    folder = inventory / "requests"
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_form_is_french_and_headers_are_strict(client: FlaskClient) -> None:
    page = client.get("/demande")
    assert '<html lang="fr">' in page.text and "Demander une messagerie pour votre commune" in page.text
    assert page.headers["Content-Security-Policy"] == CSP
    assert "unsafe-inline" not in CSP and "default-src 'none'" in CSP and "frame-ancestors 'none'" in CSP
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "<script>" not in page.text and " style=" not in page.text and "onclick" not in page.text.lower()


def test_valid_request_then_acknowledgement(client: FlaskClient, inventory_dir: Path, ref: Referential) -> None:
    before = files(inventory_dir)
    response = client.post("/demande", data={**VALID, "csrf_token": token(client)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/demande/envoyee")
    ack = client.get("/demande/envoyee")
    reference = re.search(r'id="reference">(REQ-\d{4}-\w{8})<', ack.text)
    assert reference and "Votre demande est enregistrée" in ack.text
    new = files(inventory_dir) - before
    assert new == {inventory_dir / "requests" / reference.group(1) / n
                   for n in ("14366-lisieux.yaml", "request.yaml")}
    assert req.read_request(inventory_dir, reference.group(1)).channel == "portal"


def test_csrf_token_is_required(client: FlaskClient, inventory_dir: Path) -> None:
    token(client)   # a session exists, but the form does not carry its token
    for data in (VALID, {**VALID, "csrf_token": ""}, {**VALID, "csrf_token": "forged"}):
        response = client.post("/demande", data=data)
        assert response.status_code == 400
        assert "Votre session a expiré ou le formulaire ne vient pas de ce site" in response.text
    assert requests_written(inventory_dir) == []


def test_csrf_token_of_another_session_is_refused(app: Flask, inventory_dir: Path) -> None:
    stolen = token(app.test_client())
    victim = app.test_client()
    victim.get("/demande")
    assert victim.post("/demande", data={**VALID, "csrf_token": stolen}).status_code == 400
    assert requests_written(inventory_dir) == []


def test_cross_origin_post_is_refused(client: FlaskClient, inventory_dir: Path) -> None:
    response = client.post("/demande", data={**VALID, "csrf_token": token(client)},
                           headers={"Origin": "https://evil.example"})
    assert response.status_code == 400
    assert requests_written(inventory_dir) == []


def test_csrf_token_is_single_use(client: FlaskClient, inventory_dir: Path) -> None:
    used = token(client)
    assert client.post("/demande", data={**VALID, "csrf_token": used}).status_code == 303
    again = client.post("/demande", data={**VALID, "csrf_token": used})
    assert again.status_code == 400
    assert len(requests_written(inventory_dir)) == 2   # one request only


def test_oversized_body_is_refused(client: FlaskClient, inventory_dir: Path) -> None:
    response = client.post("/demande", data={**VALID, "csrf_token": token(client), "message": "x" * 40_000})
    assert response.status_code == 413
    assert "Envoi trop volumineux" in response.text and "Traceback" not in response.text
    many = {f"champ{i}": "x" for i in range(300)}
    assert client.post("/demande", data={**VALID, **many, "csrf_token": token(client)}).status_code == 413
    multipart = client.post("/demande", data={**VALID, "csrf_token": token(client)},
                            content_type="multipart/form-data")
    assert multipart.status_code == 415
    assert requests_written(inventory_dir) == []


def test_overlong_field_is_refused_not_cut(client: FlaskClient, inventory_dir: Path) -> None:
    response = client.post("/demande", data={**VALID, "csrf_token": token(client), "dpo_name": "D" * 500})
    assert response.status_code == 422 and "Ce champ est trop long" in response.text
    assert requests_written(inventory_dir) == []


TRAVERSALS = ["../../../../tmp/relais-pwned", "..\\..\\..\\windows\\win.ini", "/etc/passwd",
              "%2e%2e%2f%2e%2e%2fetc", "lisieux.fr/../../x"]


@pytest.mark.parametrize("field_", [f for f in VALID if f != "domain_choice"] + ["domain_choice", "csrf_token"])
def test_path_traversal_in_any_field_is_refused(app: Flask, inventory_dir: Path, tmp_path: Path,
                                               field_: str) -> None:
    client = app.test_client()
    before = files(tmp_path)
    for attempt in TRAVERSALS:
        form = {**VALID, "csrf_token": token(client)}
        form[field_] = attempt
        response = client.post("/demande", data=form)
        if field_ == "message" and attempt in ("/etc/passwd", "%2e%2e%2f%2e%2e%2fetc"):
            # Free text that is no path: accepted as a message, never used as one.
            assert response.status_code == 303
            for path in requests_written(inventory_dir):
                path.unlink()
            for path in sorted((inventory_dir / "requests").iterdir()):
                path.rmdir()
            continue
        assert response.status_code in (400, 422), (field_, attempt)
        assert "Traceback" not in response.text
    assert requests_written(inventory_dir) == []
    assert files(tmp_path) == before
    assert not Path("/tmp/relais-pwned").exists()


def test_static_files_do_not_escape_their_folder(client: FlaskClient) -> None:
    for url in ("/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/requests.py",
                "/static/portail.css/../../app.py"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Page introuvable" in response.text
    assert client.get("/static/portail.js").status_code == 200


def test_honeypot_field_stops_robots(client: FlaskClient, inventory_dir: Path) -> None:
    response = client.post("/demande", data={**VALID, "csrf_token": token(client), "site_web": "http://spam"})
    assert response.status_code == 400
    assert requests_written(inventory_dir) == []


def test_rate_limit_on_submissions(inventory_dir: Path, ref: Referential) -> None:
    client = make_app(inventory_dir, ref, submit=Limit(3, 600.0)).test_client()
    bad = {**VALID, "commune": "Nulle-Part"}
    for _ in range(3):
        assert client.post("/demande", data={**bad, "csrf_token": token(client)}).status_code == 422
    response = client.post("/demande", data={**VALID, "csrf_token": token(client)})
    assert response.status_code == 429
    assert "Trop de demandes" in response.text and int(response.headers["Retry-After"]) > 0
    assert requests_written(inventory_dir) == []


def test_rate_limit_on_autocomplete(inventory_dir: Path, ref: Referential) -> None:
    client = make_app(inventory_dir, ref, api=Limit(5, 60.0)).test_client()
    for _ in range(5):
        assert client.get("/api/communes?q=cae").status_code == 200
    limited = client.get("/api/communes?q=cae")
    assert limited.status_code == 429 and limited.json == {
        "erreur": "Trop de demandes", "message": limited.json["message"]}


def test_rate_limiter_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter({"b": Limit(2, 10.0)}, clock=lambda: now[0], max_clients=4)
    assert limiter.hit("b", "a") is None and limiter.hit("b", "a") is None
    assert limiter.hit("b", "a") == pytest.approx(10.0)
    assert limiter.hit("b", "other") is None            # per client
    now[0] = 10.5
    assert limiter.hit("b", "a") is None
    for i in range(20):                                 # memory stays bounded
        limiter.hit("b", f"client{i}")
    assert len(limiter._hits) <= 4


def test_autocomplete_api(client: FlaskClient) -> None:
    found = client.get("/api/communes?q=herouville").json
    assert found["communes"][0]["insee"] == "14327"
    assert found["communes"][0]["label"] == "Hérouville-Saint-Clair — 14327 (dép. 14)"
    assert client.get("/api/communes?q=14100").json["communes"][0]["postal_codes"] == ["14100"]
    assert client.get("/api/communes?q=a").json == {"communes": []}
    assert client.get("/api/communes?q=" + "x" * 5000).status_code == 200


def test_friendly_french_errors_keep_what_was_typed(client: FlaskClient, inventory_dir: Path) -> None:
    form = {**VALID, "csrf_token": token(client), "commune": "Villeneuve-sur-Nulle",
            "agents-0-email": "c.martin@lisieux", "dpo_name": "", "dpo_email": ""}
    response = client.post("/demande", data=form)
    assert response.status_code == 422
    text = response.text.replace("&#39;", "'")
    assert "Quelques points à corriger" in text
    assert "Nous ne trouvons pas « Villeneuve-sur-Nulle » dans la liste officielle des communes" in text
    assert "il faut un nom de domaine complet" in text
    assert "c'est obligatoire pour une commune" in text
    assert 'value="Camille Martin"' in text and 'aria-invalid="true"' in text
    assert requests_written(inventory_dir) == []


def test_errors_are_french_pages_without_traces(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = client.get("/nulle-part")
    assert missing.status_code == 404 and "Page introuvable" in missing.text
    assert client.delete("/demande").status_code == 405

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("secret detail /srv/relais/inventory")

    monkeypatch.setattr(req, "create_request", broken)
    response = client.post("/demande", data={**VALID, "csrf_token": token(client)})
    assert response.status_code == 500
    assert "Erreur du service" in response.text
    assert "secret detail" not in response.text and "Traceback" not in response.text
    assert response.headers["Content-Security-Policy"] == CSP


def test_nothing_secret_is_shown(client: FlaskClient, app: Flask) -> None:
    page = client.get("/demande").text + client.get("/api/communes?q=caen").text
    key = app.config["SECRET_KEY"]
    assert key.hex() not in page and "SECRET" not in page
    assert "vault" not in page.lower()
