"""``dojobber serve``: the run records and the board in a browser (extra ``web``)."""

from __future__ import annotations

import click

from ._base import EXIT_OK, Failure, board_option, cli, records_option

__all__ = ["serve_command"]

#: Defaults repeated from dojobber.web._options, which needs the ``web``
#: extra to import (the help must work without it).
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8642


@cli.command("serve")
@records_option
@board_option
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on; anything but loopback needs a token.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT,
              show_default=True, help="Port to listen on (0: any free port).")
@click.option("--read-only", is_flag=True, help="Never post or cancel, whatever the token.")
@click.option("--token-file", metavar="FILE",
              help="Read the access token from FILE's first line (else $DOJOBBER_WEB_TOKEN).")
@click.option("--new-token", is_flag=True,
              help="Generate a token and print it once (to listen beyond loopback).")
@click.option("--max-nodes", type=click.IntRange(min=1), default=250, show_default=True,
              help="Jobs drawn in a run's picture by default (the whole graph is a click away).")
def serve_command(
    records_path: str | None, board_path: str | None, host: str, port: int, read_only: bool,
    token_file: str | None, new_token: bool, max_nodes: int,
) -> int:
    """Serve the run records and the board as web pages (and JSON).

    Prints the URL to open; that link logs the browser in, which posting
    and cancelling need.  Listens on 127.0.0.1 unless told otherwise, and
    refuses any other address without a token ($DOJOBBER_WEB_TOKEN,
    --token-file or --new-token).
    """
    try:
        from ..web import ServeError, WebOptions, load_token, serve
    except ImportError as err:
        raise Failure(
            f"dojobber serve needs the 'web' extra ({err}); install it with: "
            "pip install 'dojobber[web]'"
        ) from None
    try:
        token = load_token(token_file)
        options = WebOptions(records=records_path, board=board_path, host=host, port=port,
                             read_only=read_only, max_nodes=max_nodes)
        if token is not None:
            options.token, options.token_given = token, True
        elif new_token:
            options.token_given = True
        serve(options, show_token=token is None)
    except ServeError as err:
        raise Failure(str(err)) from None
    return EXIT_OK
