"""The ``accord`` command line (docs/cli.md is generated from its ``--help``).

``accord.cli.common`` holds the options and helpers every command shares; one module per
command group (``cases``, ``mail``, ``outcomes``, …) imports it and no other group;
``accord.cli.root`` assembles the Typer app. The modules import the database, the
services and the web stack inside the commands that use them, so ``accord --help`` starts
in a fraction of a second (tests/ops/test_startup.py). ``accord serve``'s process
orchestration is ``accord.ops.serve``.
"""

from accord.cli.root import app, main

__all__ = ["app", "main"]
