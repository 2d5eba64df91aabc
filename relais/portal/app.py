"""The communes' request portal (Flask): a French form that writes a request, nothing else.

It faces the public, so it is strict: a CSRF token bound to the session on every
POST, known fields only with size limits, a 32 KiB body limit, rate limits per
client, a Content-Security-Policy without inline code, French error pages
without stack traces, and writes only under `inventory/requests/`. It never
reads or shows a secret. An operator's approval (`relais requests approve`) is
what lets a request into the inventory.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, Response, jsonify, redirect, render_template, request, session, url_for
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as BaseResponse

from relais import requests as requests_mod
from relais.model import Flavor
from relais.portal.forms import AGENT_ROWS, HONEYPOT, parse_form
from relais.portal.ratelimit import Limit, RateLimiter
from relais.referential import Referential, normalize
from relais.requests import (
    LOG_RETENTION,
    MESSAGE_RETENTION,
    Context,
    DraftInvalid,
    FieldProblem,
    RequestDraft,
    commune_label,
    default_choice,
    dns_records_to_create,
    service_offers,
)

MAX_BODY = 32 * 1024
MAX_FIELDS = 80
CSRF_FIELD = "csrf_token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
ERROR_TEXTS = {
    400: ("Demande incorrecte", "Votre navigateur a envoyé une demande que nous ne comprenons pas."),
    403: ("Accès refusé", "Cette page n'est pas accessible."),
    404: ("Page introuvable", "Cette page n'existe pas. Le formulaire de demande est à l'accueil."),
    405: ("Action impossible", "Cette action n'est pas possible sur cette page."),
    415: ("Envoi incorrect", "Envoyez la demande depuis le formulaire de ce site."),
    413: ("Envoi trop volumineux", "Votre envoi dépasse la taille autorisée (32 Ko). Raccourcissez "
          "votre message ou le nombre d'agents, puis renvoyez le formulaire."),
    429: ("Trop de demandes", "Vous avez envoyé beaucoup de demandes en peu de temps. Patientez "
          "quelques minutes puis réessayez."),
    500: ("Erreur du service", "Une erreur s'est produite de notre côté ; votre demande n'a pas été "
          "enregistrée. Réessayez plus tard ou écrivez au syndicat."),
}

log = logging.getLogger("relais.portal")


@dataclass
class PortalConfig:
    secret_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    behind_proxy: bool = False
    """Behind the syndicate's nginx (HTTPS): trust one X-Forwarded-For/Proto hop, Secure cookies."""
    limits: dict[str, Limit] = field(default_factory=lambda: {
        "submit": Limit(10, 600.0),   # form submissions per client per 10 minutes
        "page": Limit(120, 60.0),
        "api": Limit(240, 60.0),      # autocomplete: one call per keystroke pause
    })


def create_app(inventory: Path, referential: Referential, config: PortalConfig | None = None) -> Flask:
    config = config or PortalConfig()
    ctx = Context.load(inventory, referential)
    limiter = RateLimiter(dict(config.limits))
    app = Flask(__name__, static_url_path="/static")
    app.config.update(
        SECRET_KEY=config.secret_key,
        MAX_CONTENT_LENGTH=MAX_BODY,
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
        MAX_FORM_PARTS=200,
        SESSION_COOKIE_NAME="relais_portail",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.behind_proxy,
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
        TEMPLATES_AUTO_RELOAD=False,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # DefaultJSONProvider
    app.debug = False
    if config.behind_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    syndicate = ctx.hosting.syndicate
    defaults = ctx.hosting.defaults.retention
    offers = service_offers(ctx.hosting)

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            session["csrf"] = token
        return token

    def csrf_ok() -> bool:
        expected = session.get("csrf")
        given = request.form.get(CSRF_FIELD, "")
        if not isinstance(expected, str) or not given:
            return False
        origin = request.headers.get("Origin")
        if origin and origin not in ("null", request.host_url.rstrip("/")):
            return False
        return hmac.compare_digest(expected.encode(), given.encode())

    def limited(bucket: str) -> None:
        wait = limiter.hit(bucket, request.remote_addr or "?")
        if wait is not None:
            raise TooManyRequests(wait)

    def render_form(draft: RequestDraft, problems: list[FieldProblem], status: int) -> Response:
        errors: dict[str, str] = {}
        for problem in problems:
            errors.setdefault(problem.field, problem.message)
        shown = max(3, 1 + max((i for i, a in enumerate(draft.agents) if a.name or a.email), default=0))
        agents = list(draft.agents) + [requests_mod.AgentDraft() for _ in range(AGENT_ROWS)]
        page = render_template(
            "form.html", syndicate=syndicate, offers=offers, draft=draft, errors=errors,
            problems=problems, agents=agents[:AGENT_ROWS], shown_agents=min(shown, AGENT_ROWS),
            message_choices=MESSAGE_RETENTION, log_choices=LOG_RETENTION,
            dns_examples={
                flavor.value: dns_records_to_create(flavor, "messagerie.ma-commune.fr")
                for flavor in (Flavor.MATRIX_DEDICATED, Flavor.XMPP)
            },
            honeypot=HONEYPOT, csrf_field=CSRF_FIELD, csrf_token=csrf_token(),
        )
        return Response(page, status=status, mimetype="text/html")

    @app.after_request
    def headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if config.behind_proxy:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if response.mimetype in ("text/html", "application/json"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/")
    def home() -> BaseResponse:
        return redirect(url_for("form"))

    @app.get("/demande")
    def form() -> Response:
        limited("page")
        draft = RequestDraft(
            flavor="", retention_messages=default_choice(MESSAGE_RETENTION, defaults.messages),
            retention_logs=default_choice(LOG_RETENTION, defaults.logs))
        return render_form(draft, [], 200)

    @app.post("/demande")
    def submit() -> BaseResponse:
        limited("submit")
        if request.mimetype != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType()
        if sum(len(values) for values in request.form.listvalues()) > MAX_FIELDS:
            raise RequestEntityTooLarge()
        parsed = parse_form(request.form)
        if not csrf_ok():
            problem = FieldProblem("", "Votre session a expiré ou le formulaire ne vient pas de ce site : "
                                   "vérifiez vos réponses puis renvoyez le formulaire.")
            return render_form(parsed.draft, [problem], 400)
        if parsed.honeypot:
            return render_form(parsed.draft, [FieldProblem("", "Votre demande n'a pas pu être enregistrée.")],
                               400)
        if parsed.too_long:
            return render_form(parsed.draft, [FieldProblem(name, "Ce champ est trop long.")
                                              for name in parsed.too_long], 422)
        try:
            checked = requests_mod.check_draft(parsed.draft, ctx)
        except DraftInvalid as invalid:
            return render_form(parsed.draft, invalid.problems, 422)
        created = requests_mod.create_request(ctx, checked, channel="portal")
        log.info("request %s received for commune %s", created.reference, created.insee)
        session["reference"] = created.reference
        session["commune"] = created.commune
        session.pop("csrf", None)  # one token per form
        return redirect(url_for("received"), code=303)

    @app.get("/demande/envoyee")
    def received() -> BaseResponse:
        limited("page")
        reference = session.get("reference")
        if not isinstance(reference, str):
            return redirect(url_for("form"))
        return Response(render_template("ack.html", syndicate=syndicate, reference=reference,
                                        commune=session.get("commune", "")), mimetype="text/html")

    @app.get("/api/communes")
    def communes() -> Response:
        limited("api")
        query = (request.args.get("q") or "")[:64]
        found = referential.search(query, limit=8) if len(normalize(query)) >= 2 else []
        return jsonify({"communes": [
            {"insee": c.insee, "name": c.name, "departement": c.departement,
             "postal_codes": list(c.postal_codes[:3]), "label": commune_label(c)}
            for c in found
        ]})

    @app.get("/sante")
    def health() -> Response:
        return Response("ok\n", mimetype="text/plain")

    def error_page(error: HTTPException) -> Response:
        code = error.code or 500
        title, text = ERROR_TEXTS.get(code, ERROR_TEXTS[500] if code >= 500 else ERROR_TEXTS[400])
        if request.path.startswith("/api/"):
            response = jsonify({"erreur": title, "message": text})
            response.status_code = code
        else:
            response = Response(render_template("error.html", syndicate=syndicate, title=title,
                                                text=text, code=code),
                                status=code, mimetype="text/html")
        if isinstance(error, TooManyRequests):
            response.headers["Retry-After"] = str(int(error.wait) + 1)
        return response

    app.register_error_handler(HTTPException, error_page)
    app.register_error_handler(InternalServerError, error_page)
    return app


class TooManyRequests(HTTPException):
    code = 429
    description = "Too many requests"

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.wait = wait


def app_from_environment() -> Flask:
    """For a WSGI server (e.g. `gunicorn 'relais.portal.app:app_from_environment()'`):
    reads RELAIS_INVENTORY and, for several workers, RELAIS_PORTAL_SECRET_KEY_FILE."""
    import os

    from relais import referential
    from relais.cli.context import default_inventory

    inventory = Path(os.environ.get("RELAIS_INVENTORY") or default_inventory())
    config = PortalConfig(behind_proxy=os.environ.get("RELAIS_PORTAL_BEHIND_PROXY") == "1")
    key_file = os.environ.get("RELAIS_PORTAL_SECRET_KEY_FILE")
    if key_file:
        config.secret_key = Path(key_file).read_bytes().strip()
    return create_app(inventory, referential.load(), config)
