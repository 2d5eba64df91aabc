"""PostgreSQL SCRAM-SHA-256 verifiers, computed on the controller.

The deploy sets a role's password as a verifier (`ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...'`)
so the plain password never reaches the host's SQL, and tells whether the role already has the
Plan's password by recomputing the verifier with the stored salt and iteration count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16) if salt is None else salt
    stored_key, server_key = _keys(password, salt, iterations)
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


def matches(stored: str | None, password: str) -> bool:
    """True when `stored` (pg_authid.rolpassword) is a SCRAM verifier of `password`."""
    if not stored or not stored.startswith("SCRAM-SHA-256$"):
        return False
    try:
        _, params, keys = stored.split("$")
        iterations_text, salt_b64 = params.split(":")
        stored_b64, server_b64 = keys.split(":")
        salt = base64.b64decode(salt_b64, validate=True)
        iterations = int(iterations_text)
        want_stored, want_server = base64.b64decode(stored_b64), base64.b64decode(server_b64)
    except ValueError:
        return False
    stored_key, server_key = _keys(password, salt, iterations)
    return hmac.compare_digest(stored_key, want_stored) and hmac.compare_digest(server_key, want_server)
