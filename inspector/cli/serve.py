"""`inspector serve`: the inspection app in the browser."""
from __future__ import annotations

from pathlib import Path

import typer

from inspector.cli import app


@app.command()
def serve(
    store: Path = typer.Option(Path("demo/store"), "--store", help="The spectrum store directory."),
    db: str = typer.Option("sqlite:///demo/fnet_inspector.sqlite", "--db", help="Database URL (SQLAlchemy)."),
    port: int = typer.Option(5006, "--port", help="Port to listen on (0: any free port)."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to listen on: this machine only unless "
                                "told otherwise (0.0.0.0: every interface, for a team; use --basic-auth then)."),
    basic_auth: Path = typer.Option(None, "--basic-auth", help="Panel basic-auth file (JSON {user: password}); "
                                    "the user name becomes the inspector's name. Without it the page asks for a name."),
    show: bool = typer.Option(False, "--show", help="Open a browser tab."),
    allow_origin: list[str] = typer.Option(None, "--allow-origin", help="Another host[:port] browsers may open "
                                           "the app from (a proxy's name, say); repeatable. This machine's "
                                           "names and --address are always allowed."),
    oauth_provider: str = typer.Option(None, "--oauth-provider", help="A team login through Panel's OAuth "
                                       "(github, google, azure, okta, generic, ...); the login becomes the inspector."),
    oauth_key: str = typer.Option(None, "--oauth-key", envvar="FNET_OAUTH_KEY", help="The OAuth app's client id."),
    oauth_secret: str = typer.Option(None, "--oauth-secret", envvar="FNET_OAUTH_SECRET",
                                     help="The OAuth app's client secret (better from FNET_OAUTH_SECRET)."),
    oauth_redirect_uri: str = typer.Option(None, "--oauth-redirect-uri", help="The public URL behind a proxy."),
    crosscheck_fraction: float = typer.Option(0.1, "--crosscheck-fraction", min=0.0, max=1.0,
                                              help="Share of queue picks that re-check another inspector's "
                                              "decision (0: never, 1: always when one exists)."),
) -> None:
    """Serve the Panel inspection app (Inspect tab; Overview when available)."""
    from inspector.app.access import AccessError
    from inspector.app.serve import serve as run

    if not (store / "store.json").exists():
        raise typer.BadParameter(f"{store} is not a spectrum store (run `inspector demo` or `inspector ingest`)")
    typer.echo(f"FNet Inspector on http://localhost:{port}/ (store {store}, db {db})", err=True)
    try:
        run(store, db, port=port, address=address, basic_auth=str(basic_auth) if basic_auth else None, show=show,
            crosscheck_fraction=crosscheck_fraction, allow_origin=allow_origin,
            oauth={"oauth_provider": oauth_provider, "oauth_key": oauth_key, "oauth_secret": oauth_secret,
                   "oauth_redirect_uri": oauth_redirect_uri} if oauth_provider else None)
    except AccessError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
