"""Command-line arguments that several ``visionpipe`` commands share."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str, set_help: str | None = None) -> None:
    """``--config FILE`` and repeatable ``--set KEY=VALUE``: the config a command reads."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
