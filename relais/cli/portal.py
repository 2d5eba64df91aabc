"""`relais portal`: serve the communes' request form (French), on 127.0.0.1 by default."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from werkzeug.serving import WSGIRequestHandler, make_server

from relais import referential
from relais.cli.context import State
from relais.console import Console
from relais.errors import RelaisError


class _Handler(WSGIRequestHandler):
    """No server banner: the portal does not advertise its software."""

    def version_string(self) -> str:
        return "relais-portail"


def command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (keep it local; "
                             "publish through the syndicate's nginx)."),
    port: int = typer.Option(8470, "--port", min=1, max=65535),
    behind_proxy: bool = typer.Option(
        False, "--behind-proxy",
        help="Behind nginx over HTTPS: trust one X-Forwarded-For/-Proto hop, set Secure cookies and HSTS."),
    secret_key_file: Path = typer.Option(
        None, "--secret-key-file", dir_okay=False, exists=True,
        help="Key that signs sessions (default: a random key per start; forms in progress then expire)."),
) -> None:
    """Serve the request portal: communes request a tenant; requests land in inventory/requests/."""
    from relais.portal.app import PortalConfig, create_app

    state: State = ctx.obj
    console = Console()
    config = PortalConfig(behind_proxy=behind_proxy)
    if secret_key_file is not None:
        try:
            key = secret_key_file.read_bytes().strip()
        except OSError as exc:
            raise RelaisError(f"cannot read {secret_key_file}: {exc.strerror}") from None
        if len(key) < 32:
            raise RelaisError(f"{secret_key_file}: the key is too short (32 bytes at least)",
                              hint="create one with: head -c 48 /dev/urandom | base64 > FILE")
        config.secret_key = key
    app = create_app(state.inventory, referential.load_or_fetch(), config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        server = make_server(host, port, app, threaded=True, request_handler=_Handler)
    except OSError as exc:
        raise RelaisError(f"cannot listen on {host}:{port}: {exc.strerror}",
                          hint="choose another --port, or stop what uses it") from None
    console.info(f"portal on http://{host}:{port}/ — requests are written to "
                 f"{state.inventory / 'requests'} (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
