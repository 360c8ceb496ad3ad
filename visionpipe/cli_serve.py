"""The serving commands of the CLI: ``serve`` (the development model server), ``monitor``
(serving drift from the request log) and ``predict --server`` (predict through a server).

Flag names of ``serve`` are tensorflow_model_server's, so a command line moves between the
two; this module turns flags into objects and hands them to serving/.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from visionpipe.cli_args import add_config_arguments, config_of
from visionpipe.pipeline.errors import UserError


def add_commands(sub, common: argparse.ArgumentParser, predict: argparse.ArgumentParser) -> None:
    """Adds ``serve`` and ``monitor`` to the subcommands and the server flags to ``predict``."""
    from visionpipe.serving.client import PROTOCOLS

    serve = sub.add_parser(
        "serve",
        parents=[common],
        help="development model server with TF Serving's REST and gRPC APIs (production: the official image)",
        description="A development stand-in for tensorflow_model_server, with its flags. Production serving uses "
        "the official tensorflow/serving image with the files push writes (serving/deploy).",
    )
    _add_tf_serving_flags(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    serve.add_argument("--max_request_bytes", type=int, default=64 << 20, help="larger REST bodies get HTTP 413")
    serve.add_argument("--request_log", type=Path, help="append request statistics (JSONL) for `visionpipe monitor`")
    serve.add_argument("--request_log_sample_rate", type=float, default=1.0, help="share of requests logged")
    serve.set_defaults(handler=_serve)

    monitor = sub.add_parser(
        "monitor",
        parents=[common],
        help="serving drift: compare a request log with the training data's statistics (exit code 1 on drift)",
    )
    monitor.add_argument("--request-log", required=True, type=Path, help="the log `visionpipe serve` wrote")
    add_config_arguments(monitor, "config whose run.root (latest statistics) and validate.drift to use")
    monitor.add_argument("--statistics", type=Path, help="a Statistics artifact dir instead of the latest one")
    monitor.add_argument("--model-name", help="only requests to this model")
    monitor.add_argument("--since-hours", type=float, help="only requests of the last N hours")
    monitor.add_argument("--min-images", type=int, default=50, help="fewer logged images give no verdict")
    monitor.set_defaults(handler=_monitor)

    predict.add_argument("--server", metavar="HOST:PORT", help="predict through TF Serving or `visionpipe serve`")
    predict.add_argument("--model-name", default="visionpipe", help="with --server: the served model's name")
    predict.add_argument("--protocol", choices=PROTOCOLS, default="rest", help="with --server: REST or gRPC port")
    version = predict.add_mutually_exclusive_group()
    version.add_argument("--version", type=int, help="with --server: this model version")
    version.add_argument("--label", help="with --server: the version with this label (e.g. stable, canary)")
    predict.add_argument("--timeout", type=float, default=30.0, help="with --server: seconds per attempt")


def _add_tf_serving_flags(serve: argparse.ArgumentParser) -> None:
    """Every tensorflow_model_server flag, with its value syntax (serving/server_flags.py)."""
    from visionpipe.serving.server_flags import FLAGS, parse_bool

    def boolean(value: str) -> bool:
        try:
            return parse_bool(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    real = serve.add_argument_group("tensorflow_model_server's flags (--name=value)")
    for flag in FLAGS:
        help_text = flag.effect or "accepted; no effect on the development server"
        if flag.kind is bool:
            real.add_argument(
                f"--{flag.name}", nargs="?", const=True, type=boolean, default=flag.default, help=help_text
            )
        else:
            real.add_argument(f"--{flag.name}", type=flag.kind, default=flag.default, help=help_text)


def predict_remote(args) -> list:
    """``visionpipe predict --server``: the same Predictions as the in-process path."""
    from visionpipe.serving.client import ServingClient
    from visionpipe.serving.predict import Prediction, read_image

    client = ServingClient(
        args.server, args.model_name, args.protocol, version=args.version, label=args.label, timeout=args.timeout
    )
    try:
        result = client.predict([read_image(p) for p in args.images])
    finally:
        client.close()
    labels = result.above_thresholds()
    return [
        Prediction(str(p), top, labels[i] if labels is not None else None)
        for i, (p, top) in enumerate(zip(args.images, result.top(args.top_k), strict=True))
    ]


def _serve(args) -> int:
    from visionpipe.serving.server import DevServer
    from visionpipe.serving.server_flags import without_effect

    if args.version:
        from importlib.metadata import version

        import tensorflow as tf

        print(f"visionpipe serve {version('visionpipe')} (a development stand-in for tensorflow_model_server)")
        print(f"TensorFlow {tf.__version__}")
        return 0
    specs, config_file = _served_models(args)
    options = _server_options(args)
    ignored = without_effect(vars(args))
    if ignored:
        print(f"accepted, no effect on the development server: {' '.join(ignored)}", flush=True)
    set_threads(args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = DevServer(specs, options, config_file)
    _start(server, specs, args.host)
    _print_serving(server, specs, args.host, options.batching is not None)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("stopping: in-flight requests finish first", flush=True)
        server.stop()
        if server.batcher is not None:
            stats = server.batcher.stats()
            print(
                f"batching: {stats['requests']} requests in {stats['batches']} batches "
                f"({stats['rows'] / max(stats['batches'], 1):.2f} rows per batch, {stats['padded_rows']} padding rows)",
                flush=True,
            )
    return 0


def _served_models(args) -> tuple[list, Any]:
    """The models to serve (from --model_config_file, or --model_name/--model_base_path) and
    the config file the server polls (None without one)."""
    from visionpipe.serving.model_store import ConfigFile, ModelSpec

    if bool(args.model_config_file) == bool(args.model_base_path):
        raise UserError("give one of --model_base_path (one model) and --model_config_file (a models.config)")
    if not args.model_config_file:
        return [ModelSpec(args.model_name, Path(args.model_base_path).resolve())], None
    config_file = ConfigFile(Path(args.model_config_file).resolve())
    return _read(config_file.path, lambda _: config_file.specs_if_changed()), config_file


def set_threads(intra_op: int, inter_op: int) -> None:
    """--tensorflow_intra_op_parallelism and --tensorflow_inter_op_parallelism, set before any
    model loads, as they must be. 0 inter-op is TensorFlow's choice (a thread per core), as in
    tensorflow_model_server; 0 intra-op is one thread per op here, where TensorFlow would give
    each op every core: a server under load gets its parallelism from requests and batches
    running side by side, and splitting each op of a serving-sized batch over the cores costs
    more than it gains (1.1-2.4x the images/s of TensorFlow's choice for every model measured,
    BENCHMARKS.md "The development server with one thread per op")."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra_op or 1)
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def _server_options(args):
    """The server's options from TF Serving's flags; batching as --enable_batching and
    --batching_parameters_file say."""
    from visionpipe.serving.batching import BatchingOptions
    from visionpipe.serving.server import ServerOptions

    batching = None
    if args.enable_batching:
        parameters = Path(args.batching_parameters_file) if args.batching_parameters_file else None
        batching = (_read(parameters, BatchingOptions.parse) if parameters else None) or BatchingOptions()
    elif args.batching_parameters_file:
        raise UserError("--batching_parameters_file needs --enable_batching=true")
    if args.port == 0 and not args.grpc_socket_path:
        raise UserError("--port=0 turns gRPC over TCP off: give --grpc_socket_path, as tensorflow_model_server needs")
    return ServerOptions(
        host=args.host,
        rest_api_port=args.rest_api_port or -1,  # 0: no REST API, as tensorflow_model_server
        grpc_port=args.port or -1,
        grpc_socket_path=Path(args.grpc_socket_path) if args.grpc_socket_path else None,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        batching=batching,
        max_body_bytes=args.max_request_bytes,
        request_log=args.request_log,
        request_log_sample_rate=args.request_log_sample_rate,
        tensor_content=args.enable_serialization_as_tensor_content,
    )


def _start(server, specs: list, host: str) -> None:
    """Starts the server; a model it cannot load or a port it cannot take is a UserError."""
    from visionpipe.serving.servable import ServingError

    try:
        server.start()
    except ServingError as err:
        server.stop()
        raise UserError(
            f"cannot serve: {err.message}; base paths: {', '.join(str(s.base_path) for s in specs)}"
        ) from None
    except OSError as err:
        server.stop()
        raise UserError(f"cannot listen on {host}: {err}") from None


def _print_serving(server, specs: list, host: str, batching: bool) -> None:
    for spec in specs:
        versions = [v for v, state, _ in server.store.states(spec.name, None, None) if state == "AVAILABLE"]
        labels = ", ".join(f"{label}={v}" for label, v in spec.labels)
        print(
            f"model {spec.name}: versions {versions} from {spec.base_path}" + (f"; labels {labels}" if labels else "")
        )
    rest = f"REST http://{host}:{server.rest_port}/v1/models/NAME" if server.rest_port else "REST off"
    grpc = [f"{host}:{server.grpc_port}"] if server.grpc_port else []
    grpc += [f"unix:{server.options.grpc_socket_path}"] if server.options.grpc_socket_path else []
    print(
        f"development server (not for production: use the official tensorflow/serving image, serving/deploy): "
        f"{rest}  gRPC {' and '.join(grpc)}" + ("  batching on" if batching else ""),
        flush=True,
    )


def _monitor(args) -> int:
    from visionpipe.pipeline.artifacts import Statistics
    from visionpipe.pipeline.metadata import MetadataStore
    from visionpipe.serving import monitor, request_log

    config = config_of(args)
    if args.statistics is not None:
        statistics = args.statistics
    else:
        db = Path(config.run.root) / "metadata.sqlite"
        latest = MetadataStore(db).latest_outputs("validate") if db.is_file() else None
        found = [a for a in (latest[1] if latest else {}).values() if isinstance(a, Statistics)]
        if not found:
            raise UserError(f"no Statistics artifact under {config.run.root}; run the pipeline or pass --statistics")
        statistics = found[0].path
    summary = statistics / Statistics.SUMMARY if statistics.is_dir() else statistics
    if not summary.is_file():
        raise UserError(f"{summary} is missing; --statistics takes a Statistics artifact directory")
    train = _read(summary, json.loads).get("train")
    if not train or not train.get("count"):
        raise UserError(f"{summary} has no train split statistics")
    if not args.request_log.is_file():
        raise UserError(f"no request log at {args.request_log}; start `visionpipe serve --request_log` first")
    since = time.time() - args.since_hours * 3600 if args.since_hours else None
    traffic = monitor.TrafficStats.of(request_log.read(args.request_log, args.model_name, since))
    checks = monitor.compare(traffic, train, config.validate.drift, args.min_images)
    print(monitor.report(traffic, checks, str(statistics)))
    return 1 if monitor.drifted(checks) else 0


def _read(path: Path, parse):
    try:
        return parse(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise UserError(f"{path}: {err}") from None
