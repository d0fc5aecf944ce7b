"""The ``accord`` Typer app: the root command and every group, assembled in one place.

Each command group lives in its own module and shares only ``accord.cli.common``; this
module imports them all and registers their commands and sub-apps, in the order
``accord --help`` lists them. Nothing imports this module but ``accord.cli`` itself, so
the registration has no cycle to work around (pyproject.toml's import-linter contract).
"""

from __future__ import annotations

import typer

from accord.cli import common
from accord.cli.auth import member_app, portal_app, token_app
from accord.cli.cases import case_app, export, import_bundle, verify
from accord.cli.channels import channel_app, outbound
from accord.cli.customers import customer_app
from accord.cli.federation import invite, join, node_app, peers, sync
from accord.cli.imports import import_app
from accord.cli.jobs import jobs_app, worker
from accord.cli.mail import mail_app, mailbox_app
from accord.cli.node_setup import db_app, init
from accord.cli.ops import backup, restore
from accord.cli.outcomes import (
    compare,
    demo,
    goal_app,
    metrics_app,
    practice_app,
    readiness,
    template_app,
)
from accord.cli.remote import remote_app
from accord.cli.secrets import secrets_app
from accord.cli.serve import serve
from accord.cli.teams import calendar_app, handoff, notifications, routing_app, sla, team_app

app: typer.Typer = typer.Typer(
    help="Accord: customer cases as negotiated agreements, with a signed copy for every party.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Accord: customer cases as negotiated agreements, with a signed copy for every party."""
    common.reset()  # per invocation: the consoles' width follows $COLUMNS now
    ctx.call_on_close(common.close_nodes)


COMMANDS = (
    ("init", init),
    ("serve", serve),
    ("export", export),
    ("import", import_bundle),
    ("verify", verify),
    ("invite", invite),
    ("join", join),
    ("sync", sync),
    ("peers", peers),
    ("handoff", handoff),
    ("sla", sla),
    ("notifications", notifications),
    ("worker", worker),
    ("outbound", outbound),
    ("backup", backup),
    ("restore", restore),
    ("compare", compare),
    ("demo", demo),
    ("readiness", readiness),
)
GROUPS = (
    ("case", case_app),
    ("db", db_app),
    ("member", member_app),
    ("token", token_app),
    ("portal", portal_app),
    ("node", node_app),
    ("team", team_app),
    ("routing", routing_app),
    ("calendar", calendar_app),
    ("jobs", jobs_app),
    ("remote", remote_app),
    ("mailbox", mailbox_app),
    ("mail", mail_app),
    ("import-from", import_app),
    ("customer", customer_app),
    ("channel", channel_app),
    ("secrets", secrets_app),
    ("template", template_app),
    ("metrics", metrics_app),
    ("goal", goal_app),
    ("practice", practice_app),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)
for _name, _group in GROUPS:
    app.add_typer(_group, name=_name)


def main() -> None:
    """The ``accord`` script and ``python -m accord``."""
    app()
