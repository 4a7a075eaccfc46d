"""``millstream api-server``: the REST API and the web UI, on their own."""

from __future__ import annotations

import click

from millstream.cli.env import Env
from millstream.cli.output import handle_errors
from millstream.cli.scheduler import announce
from millstream.worker import logformat


@click.command("api-server")
@click.option("--host", default=None, help="Default: [api] host (127.0.0.1).")
@click.option("--port", type=int, default=None, help="Default: [api] port (8080).")
@handle_errors
def api_server(host: str | None, port: int | None) -> None:
    """Serve the REST API (/api/v1) and the web UI until Ctrl-C."""
    from millstream.api.app import create_app, serve

    env = Env(None)
    settings = env.settings
    logformat.setup(settings)
    app = create_app(settings, env.store)
    host, port = host or settings.host, port or settings.port
    announce(f"API and web UI on http://{host}:{port}/ (OpenAPI: http://{host}:{port}/api/v1/openapi.json)")
    serve(app, host, port).run()
