"""``visionpipe promote``: move the ``stable`` label to the canary version a push made.

Flags name the destination and model, or take them from a config (push.destination,
export.model_name); the work is ``components.push.promote``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visionpipe.cli_args import add_config_arguments, config_of


def add_command(sub, common: argparse.ArgumentParser) -> None:
    promote = sub.add_parser(
        "promote",
        parents=[common],
        help="move the stable label to the canary version after checks (infra-blessed, accuracy >= stable's)",
    )
    add_config_arguments(promote, "config whose push.destination and export.model_name to use")
    promote.add_argument("--destination", type=Path, help="the push destination (holds models.config)")
    promote.add_argument("--model-name", help="the model to promote (default: export.model_name)")
    promote.add_argument(
        "--skip-accuracy-check", action="store_true", help="promote even if the canary scored below stable"
    )
    promote.set_defaults(handler=_promote)


def _promote(args) -> int:
    from visionpipe.components.push.promote import promote

    config = config_of(args)
    destination = args.destination or config.push.serving_root(config.run.root)
    promotion = promote(
        destination,
        args.model_name or config.export.model_name,
        allow_unavailable=config.push.allow_labels_for_unavailable_versions,
        check_accuracy=not args.skip_accuracy_check,
    )
    print(promotion.describe())
    return 0
