"""The ``visionpipe`` command: run the pipeline, list runs, review the data schema, preview
augmentation, predict, serve and monitor.

The CLI is the only place that reads flags; it builds the config and passes it on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from visionpipe import cli_gc, cli_promote, cli_serve
from visionpipe.cli_args import add_config_arguments, config_of
from visionpipe.pipeline.checks import StageStatus
from visionpipe.pipeline.config import ConfigError, is_explicit
from visionpipe.pipeline.errors import UserError
from visionpipe.pipeline.output import Output


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (args.verbose or args.handler is _run):
        # TensorFlow's C++ INFO/WARNING lines would drown the output; errors still show. A run
        # keeps them, in its log file. Set before TensorFlow loads.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.handler(args)
    except (UserError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue where it stopped", file=sys.stderr)
        return 130
    except Exception as err:  # a bug or a broken environment: one line, the traceback on file
        trace = Path(tempfile.gettempdir()) / f"visionpipe-traceback-{os.getpid()}.txt"
        trace.write_text(traceback.format_exc())
        if args.verbose:
            traceback.print_exc()
        print(f"error: unexpected {type(err).__name__}: {err} (full traceback in {trace})", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visionpipe", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", help="also show the libraries' own logs (TensorFlow, Beam, ...)"
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    for add in (_add_run, _add_runs, _add_schema, _add_augment_preview, _add_report):
        add(sub, common)
    predict = _add_predict(sub, common)
    cli_serve.add_commands(sub, common, predict)  # serve, monitor, and predict --server
    cli_promote.add_command(sub, common)  # promote: stable -> the canary version
    cli_gc.add_command(sub, common)  # gc: remove the artifacts nothing needs
    _add_cluster_spec(sub, common)
    return parser


def _add_run(sub, common: argparse.ArgumentParser) -> None:
    """``run``: the pipeline, one stage or from a stage on."""
    run = sub.add_parser("run", parents=[common], help="run the pipeline (all stages, one stage, or from a stage on)")
    add_config_arguments(
        run,
        "YAML config; defaults apply to every key it leaves out",
        "override a config value by dotted path, e.g. --set train.epochs=5",
    )
    which = run.add_mutually_exclusive_group()
    which.add_argument("--stage", help="run only this stage, on the latest upstream artifacts")
    which.add_argument("--from", dest="start", help="rerun from this stage onward")
    run.add_argument("--force", action="store_true", help="rerun stages even when cached")
    run.add_argument(
        "--override-gate",
        action="store_true",
        help="export and push even a model the gate refused; needs --reason, which is recorded with the model",
    )
    run.add_argument("--reason", default="", help="why the gate is overridden (recorded in the run's metadata)")
    run.set_defaults(handler=_run)


def _add_runs(sub, common: argparse.ArgumentParser) -> None:
    """``runs``: recent runs and their stages."""
    runs = sub.add_parser("runs", parents=[common], help="list recent runs and each stage's status")
    add_config_arguments(runs, "config whose run.root to read")
    runs.add_argument("--limit", type=int, default=10)
    runs.add_argument("--lineage", action="store_true", help="also show which stage's output each stage read")
    runs.add_argument("--disk", action="store_true", help="also show the disk space of each artifact a run wrote")
    runs.set_defaults(handler=_runs)


def _add_schema(sub, common: argparse.ArgumentParser) -> None:
    """``schema``: the inferred schema against the accepted one."""
    schema = sub.add_parser(
        "schema",
        parents=[common],
        help="compare the latest inferred data schema with the accepted one; --accept promotes it after review",
    )
    add_config_arguments(schema, "config whose run.root to use")
    schema.add_argument(
        "--accept", action="store_true", help="accept the latest schema (and its data version's drift) as reviewed"
    )
    schema.set_defaults(handler=_schema)


def _add_augment_preview(sub, common: argparse.ArgumentParser) -> None:
    """``augment-preview``: a PNG grid of augmented training images."""
    preview = sub.add_parser(
        "augment-preview",
        parents=[common],
        help="write a PNG grid of training images under the configured augmentation policy",
    )
    add_config_arguments(
        preview,
        "config whose train.augment.policy and run.root to use",
        "e.g. --set 'train.augment.policy=[flip_horizontal, rand_augment]'",
    )
    preview.add_argument("--out", type=Path, default=Path("augment_preview.png"))
    preview.add_argument("--images", type=int, default=8, help="rows: training images shown")
    preview.add_argument("--variants", type=int, default=5, help="augmented versions of each image")
    preview.set_defaults(handler=_augment_preview)


def _add_report(sub, common: argparse.ArgumentParser) -> None:
    """``report``: a run's report."""
    report = sub.add_parser(
        "report", parents=[common], help="write a run's evaluation report (HTML and Markdown) and print its path"
    )
    report.add_argument("run", nargs="?", type=int, help="run id (default: the latest run with an evaluation)")
    add_config_arguments(report, "config whose run.root to read")
    report.set_defaults(handler=_report)


def _add_predict(sub, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``predict``: top-k classes of image files (``serve`` adds ``--server`` to it)."""
    predict = sub.add_parser(
        "predict", parents=[common], help="top-k classes for images, with a SavedModel, a .tflite or a model server"
    )
    predict.add_argument(
        "--model",
        type=Path,
        help=".tflite file, SavedModel dir, TF Serving model base path, or export artifact dir (or use --server)",
    )
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--json", action="store_true", help="print JSON instead of a table")
    predict.add_argument("images", nargs="+", type=Path)
    predict.set_defaults(handler=_predict)
    return predict


def _add_cluster_spec(sub, common: argparse.ArgumentParser) -> None:
    """``cluster-spec``: the TF_CONFIG of each task of a training cluster."""
    spec = sub.add_parser(
        "cluster-spec", parents=[common], help="print the TF_CONFIG of every task of a multi-worker training cluster"
    )
    spec.add_argument(
        "--workers", required=True, help="comma-separated host:port of every task, the chief first (worker 0)"
    )
    spec.add_argument("--index", type=int, help="print only this task's TF_CONFIG, as JSON (for scripts)")
    spec.set_defaults(handler=_cluster_spec)


def _run(args) -> int:
    from visionpipe.run import run_pipeline

    if args.override_gate != bool(args.reason.strip()):
        raise UserError("--override-gate and --reason go together: say why the gate is overridden, e.g. "
                        '--override-gate --reason "hotfix approved by the model owner"')  # fmt: skip
    config = config_of(args)
    if args.data is not None:
        default = "" if is_explicit(config.explicit, "run.root") else " (--data's default; set run.root to move it)"
        print(f"run root: {Path(config.run.root).resolve()}{default}; recipe {config.recipe}", flush=True)
    command = "visionpipe " + " ".join(sys.argv[1:])
    output = Output(verbose=args.verbose, capture_logs=True)
    result = run_pipeline(
        config,
        only=args.stage,
        start=args.start,
        force=args.force,
        command=command,
        output=output,
        override_gate=args.reason.strip() if args.override_gate else "",
    )
    print(_summary_table(result))
    notes = [f"{s.stage}: {note}" for s in result.stages for note in s.notes]
    if notes:
        print("\n" + "\n".join(notes))
    if result.log_path is not None:
        print(f"\nfull log (libraries included): {result.log_path}")
    if result.run_id:
        from visionpipe.run_report import NothingToReport, write_run_report

        try:
            html, _ = write_run_report(result.root, result.run_id)
            print(f"report: {html}")
        except NothingToReport:
            pass  # the run stopped before evaluate, or started after it with no evaluation to read
    failure = result.failure()
    if failure is not None:
        print(f"\nerror: stage {failure.stage} {failure.status}: {failure.message}", file=sys.stderr)
        return 1
    return 0


def _cluster_spec(args) -> int:
    from visionpipe.pipeline.cluster import tf_configs

    configs = tf_configs([w.strip() for w in args.workers.split(",") if w.strip()])
    if args.index is not None:
        if not 0 <= args.index < len(configs):
            raise UserError(f"--index {args.index} is not a task of this {len(configs)}-worker cluster")
        print(configs[args.index])
        return 0
    for index, tf_config in enumerate(configs):
        role = " (the chief: it runs the pipeline and registers the model)" if index == 0 else ""
        print(f"# worker {index}{role}\nexport TF_CONFIG='{tf_config}'")
    print("\n# then, on every task, on the same run.root: visionpipe run --config <config> --from train")
    return 0


def _summary_table(result) -> str:
    rows = [("stage", "status", "cached", "seconds", "key metric")]
    for s in result.stages:
        rows.append(
            (
                s.stage,
                s.status,
                "yes" if s.status is StageStatus.CACHED else "no" if s.status is StageStatus.SUCCEEDED else "-",
                f"{s.seconds:.1f}" if s.status is not StageStatus.NOT_RUN else "-",
                s.key_metric,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    who = (
        f"{result.task} of the multi-worker cluster (the chief records the run)"
        if result.task
        else f"run {result.run_id}"
    )
    lines = [f"\n{who} under {result.root}"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _runs(args) -> int:
    from visionpipe.gc import disk_bytes
    from visionpipe.pipeline.metadata import MetadataStore

    config = config_of(args)
    db = Path(config.run.root) / "metadata.sqlite"
    if not db.is_file():
        print(f"no runs yet under {config.run.root}")
        return 0
    store = MetadataStore(db)
    for run in store.runs(args.limit):
        started = datetime.datetime.fromtimestamp(run["started"]).strftime("%Y-%m-%d %H:%M:%S")
        print(f"run {run['id']}  {started}  {run['status']}  {run['command'] or ''}")
        for ex in store.executions_of_run(run["id"]):
            seconds = f"{ex['finished'] - ex['started']:.1f}s" if ex["finished"] else "-"
            summary = json.loads(ex["summary"]) if ex["summary"] else {}
            metric = ", ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                for k, v in list(summary.items())[:3]
                if k not in ("seconds", "notes")
            )
            print(
                f"    {ex['stage']:<9} {ex['status']:<9} cached={'yes' if ex['cached'] else 'no':<3} "
                f"{seconds:>8}  {metric}"
            )
            for name, artifact in store.artifacts_of(ex["id"], "output").items():
                if artifact.removed:
                    print(f"        removed by visionpipe gc: {name} ({artifact.TYPE}) at {artifact.path}")
                elif not artifact.path.exists():  # removed by hand, or a root copied without it
                    print(f"        missing: {name} ({artifact.TYPE}) at {artifact.path}: its files are gone")
                elif args.disk and not ex["cached"]:  # a cached execution points at an older run's files
                    print(f"        disk: {name} {disk_bytes(artifact.path) / 1e6:.1f} MB at {artifact.path}")
            if args.lineage:
                sources = store.input_sources(ex["id"])
                print("".join(f"        {ex['stage']} <- {stage}.{output}\n" for _, stage, output in sources), end="")
    store.close()
    return 0


def _schema(args) -> int:
    from visionpipe.components.validate import accept

    root = Path(config_of(args).run.root).resolve()
    result = accept.accept(root) if args.accept else accept.review(root)
    print(f"latest schema:   {result.latest}")
    print(f"accepted schema: {result.accepted}{'' if result.accepted.is_file() else ' (none yet)'}")
    print(f"classes added: {', '.join(result.added) or 'none'}; removed: {', '.join(result.removed) or 'none'}")
    if result.blocking:
        print(f"the latest validate run has blocking anomalies: {', '.join(result.blocking)}")
    if args.accept:
        print(
            "accepted: validate checks classes against this schema, and this data version's drift counts "
            "as reviewed; rerun `visionpipe run` to continue"
        )
    else:
        print("review it, then run `visionpipe schema --accept` to make it the accepted schema")
    return 0


def _augment_preview(args) -> int:
    from visionpipe.components.train.preview import write_preview

    out = write_preview(config_of(args), args.out, args.images, args.variants)
    print(f"wrote {out}")
    return 0


def _report(args) -> int:
    from visionpipe.run_report import write_run_report

    config = config_of(args)
    html, markdown = write_run_report(Path(config.run.root).resolve(), args.run)
    print(html)
    print(markdown)
    return 0


def _predict(args) -> int:
    from visionpipe.serving.predict import predict

    if (args.model is None) == (args.server is None):
        raise UserError("pass either --model PATH (in process) or --server HOST:PORT (through a model server)")
    results = cli_serve.predict_remote(args) if args.server else predict(args.model, args.images, args.top_k)
    if args.json:
        rows = [
            {"image": r.path, "top_k": [{"class": c, "probability": p} for c, p in r.top]}
            | ({"labels": r.labels} if r.labels is not None else {})
            for r in results
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for r in results:
        print(r.path)
        if r.labels is not None:  # multi-label: what the model decides, then the most probable
            print(f"  labels above their thresholds: {', '.join(r.labels) or '(none)'}")
        for name, probability in r.top:
            print(f"  {name:<24} {probability:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
