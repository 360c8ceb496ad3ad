"""Command-line arguments that several ``visionpipe`` commands share."""

from __future__ import annotations

import argparse

from visionpipe.config import Config, load_config


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str, set_help: str | None = None) -> None:
    """``--config FILE``, repeatable ``--set KEY=VALUE`` and ``--data DIR``: the config a command reads."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="a folder of class sub-folders (or train/ val/ test/ of them) or a .csv/.jsonl manifest; without "
        "--config the recipe is auto, and run.root defaults to visionpipe_runs/<its name>",
    )


def config_of(args: argparse.Namespace) -> Config:
    """The config that ``add_config_arguments``' flags describe."""
    return load_config(args.config, args.set, data=args.data)
