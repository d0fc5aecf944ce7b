"""``accord serve``: parses its options and hands them to ``accord.ops.serve``.

The orchestration (bind first, build the node in the background, the worker processes,
the mail listeners) is ``accord.ops.serve``; the settings merge (options, ``ACCORD_*``,
``accord.toml``) is ``accord.ops.settings``. Options left out are None here, so that the
environment and the file can fill them: the defaults shown are ``ServeSettings``'.
"""

from __future__ import annotations

from typing import Annotated

import typer

from accord.cli import common
from accord.cli.common import DatabaseReadUrl, DatabaseUrl, DataDir, fail


def serve(
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to listen on (default 127.0.0.1; $ACCORD_HOST).", show_default=False
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="TCP port to listen on (default 8640; $ACCORD_PORT).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="HTTP processes ($ACCORD_WORKERS). Above 1, this process keeps the background "
            "work (timers, pulls, mail listener) and the others only serve requests (default 1).",
            show_default=False,
        ),
    ] = None,
    sync_interval: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Seconds between pulls from peer nodes (0: only on demand; default 60; "
            "$ACCORD_SYNC_INTERVAL).",
            show_default=False,
        ),
    ] = None,
    inline_worker: Annotated[
        bool | None,
        typer.Option(
            "--inline-worker/--no-inline-worker",
            help="Run the timer worker in this process (default: on with SQLite; with "
            "PostgreSQL run `accord worker` processes instead).",
        ),
    ] = None,
    smtp_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Receive mail for the mailboxes by SMTP on this port (0, the default: no "
            "listener; $ACCORD_SMTP_PORT).",
            show_default=False,
        ),
    ] = None,
    smtp_host: Annotated[
        str | None,
        typer.Option(
            help="Address the SMTP listener binds (default 127.0.0.1; $ACCORD_SMTP_HOST).",
            show_default=False,
        ),
    ] = None,
    imap: Annotated[
        bool,
        typer.Option(
            "--imap/--no-imap",
            help="Poll the mailboxes that have an IMAP account (run it in one process only).",
        ),
    ] = True,
    log_format: Annotated[
        str | None,
        typer.Option(
            help="text (the default), or json: one object per line ($ACCORD_LOG_FORMAT).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="debug, info (the default), warning or error ($ACCORD_LOG_LEVEL).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the HTTP server, periodic pulls, the mail listener and IMAP polling if asked,
    and, on the embedded default, the timer worker.

    The port answers at once: /health while the node starts, every request once /ready
    says so (requests that come earlier wait for it).

    Settings come from the command line, then ACCORD_* environment variables, then the
    \\[serve] table of accord.toml in the data directory (docs/operations.md)."""
    from accord.ops.config import ConfigError, default_data_dir
    from accord.ops.serve import StartFailed
    from accord.ops.serve import serve as run
    from accord.ops.settings import ServeSettings

    data_dir = data or default_data_dir()
    try:
        settings = ServeSettings.load(
            data_dir,
            host=host,
            port=port,
            workers=workers,
            sync_interval=sync_interval,
            smtp_port=smtp_port,
            smtp_host=smtp_host,
            log_format=log_format,
            log_level=log_level,
            database_url=database,
            database_read_url=database_read,
        )
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    try:
        run(
            settings,
            data_dir,
            inline_worker=inline_worker,
            imap=imap,
            say=lambda line: common.out.print(line, markup=False),
        )
    except StartFailed as exc:
        raise fail(str(exc)) from exc
