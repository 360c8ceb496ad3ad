"""Load on the development model server: N concurrent clients, REST and gRPC, server-side
batching off and on, against the model's own signature called in process (the limit).

The server runs as `visionpipe serve` in its own process (two of them: batching off, on);
each client thread sends one-image requests back to back through ``ServingClient`` for
``--seconds``. Contenders, interleaved over ``--repeats``:

- in-process, 1 image/call: the signature called from N threads, one image per call (what an
  unbatched server can at most do per request);
- in-process, batch B x T (the reference): T threads (``--batch-threads``, the batching
  config's num_batch_threads) calling the signature on batches of B (``--max-batch``) images:
  what the server's batching can at most reach;
- rest / grpc, batching off / on: requests/s (= images/s), p50 and p99 latency, errors, from
  N Python client threads in this process (``ServingClient``, what a Python user runs);
- rest (wrk) / grpc (h2load), batching off / on: the same from native load generators with N
  connections (``native_load``; ``--no-native`` leaves them out). They cost the shared cores
  far less CPU per request than Python clients, so their rate is the server's own.

The model is a registry model (default small_cnn width 32 on 32x32 RGB, 10 classes; ``--model``,
``--model-args``, ``--size``) with random weights, exported as the pipeline exports it; request
images are PNGs of random pixels or JPEG photo stand-ins (``--format``). TensorFlow runs ops on
``--intra-op`` threads in the servers and in process alike (default: the server's default, one).
The CPU seconds of the client process and of the server are read per contender (psutil).

    python benchmarks/serving_load.py --clients 8 --seconds 2.5 --repeats 2
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from native_load import TOOLS, NativeLoad, missing_tools
from ratios import Rates, p50_p99

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
MODEL = "bench"


def export_model(base: Path, name: str, model_args: dict, size: int) -> None:
    from visionpipe.components.export.saved_model import export_saved_model
    from visionpipe.models.preprocessing import PreprocessingSpec
    from visionpipe.models.registry import create_model

    spec = PreprocessingSpec(size, size, 3, "stretch", (0.5,) * 3, (0.25,) * 3)
    model = create_model(name, spec.input_shape, 10, model_args)
    export_saved_model(model, spec, [f"class_{i}" for i in range(10)], base / MODEL / "1")


def images(count: int, size: int, image_format: str) -> list[bytes]:
    """Request images: random pixels as PNG (the worst case for the decoder), or as JPEG
    (quality 90) smooth colour gradients with noise, about the bytes a camera photo of that
    size takes."""
    from PIL import Image

    rng, out = np.random.default_rng(0), []
    ramp = np.linspace(0, 1, size)[:, None, None] * np.linspace(1, 0, size)[None, :, None]
    for _ in range(count):
        if image_format == "png":
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        else:
            colour = rng.uniform(0, 255, (1, 1, 3))
            pixels = np.clip(
                colour * ramp + 255 * (1 - ramp) * rng.uniform(0, 1, 3) + rng.normal(0, 12, (size, size, 3)), 0, 255
            ).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(
            buffer, format=image_format.upper(), **({"quality": 90} if image_format == "jpeg" else {})
        )
        out.append(buffer.getvalue())
    return out


def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def with_server_cpu(server, run, *args) -> dict:
    """``run(*args)``'s result with the CPU seconds the ``server`` process (a psutil.Process) spent."""
    before = cpu_seconds(server)
    result = run(*args)
    return {**result, "server_cpu": cpu_seconds(server) - before}


def load(clients: int, seconds: float, call) -> dict:
    """``call(thread, i)`` from ``clients`` threads for ``seconds``: rate, latencies, errors, and
    the CPU seconds this process spent."""
    import psutil

    process = psutil.Process()
    cpu_before = cpu_seconds(process)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = threading.Event()

    def run(thread: int) -> None:
        i = 0
        while not stop.is_set():
            start = time.perf_counter()
            try:
                call(thread, i)
                latencies[thread].append(time.perf_counter() - start)
            except Exception:
                errors[thread] += 1
            i += 1

    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.perf_counter() - began
    flat = [1000 * x for per in latencies for x in per]
    p50, p99 = p50_p99(flat)
    return {
        "client_cpu": cpu_seconds(process) - cpu_before,
        "seconds": elapsed,
        "rate": len(flat) / elapsed,
        "p50": p50,
        "p99": p99,
        "errors": sum(errors),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path, batching: Path | None, flags: list[str] = ()) -> tuple[subprocess.Popen, int, int]:
    """`visionpipe serve` on free ports, which it prints when it listens (port 0 would turn the
    API off, as it does for tensorflow_model_server)."""
    command = [sys.executable, "-m", "visionpipe", "serve", f"--model_base_path={base / MODEL}"]
    command += [f"--model_name={MODEL}", f"--rest_api_port={free_port()}", f"--port={free_port()}"]
    command += ["--enable_batching=true", f"--batching_parameters_file={batching}"] if batching else []
    command += list(flags)
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        listening = re.search(r"REST http://[^:]+:(\d+)/.* gRPC [^:]+:(\d+)", line)
        if listening:
            # keep its pipe drained; its last lines say how it batched
            proc.tail = []
            threading.Thread(target=lambda: proc.tail.extend(proc.stdout), daemon=True).start()
            return proc, int(listening[1]), int(listening[2])
    raise RuntimeError(f"the server exited with code {proc.wait()} before it listened")


def verdict(median: dict[str, float], reference: str, clients: str, rest: str, grpc: str) -> str:
    """Issue 24's target: with batching on, REST and gRPC at 0.9x the reference or more, gRPC at
    least as fast as REST."""
    rest_ratio, grpc_ratio = median[rest] / median[reference], median[grpc] / median[reference]
    met = rest_ratio >= 0.9 and grpc_ratio >= 0.9 and grpc_ratio >= rest_ratio
    return (
        f"{clients}: batching on vs reference: REST {rest_ratio:.2f}x, gRPC {grpc_ratio:.2f}x "
        f"(targets >= 0.90x, gRPC >= REST): " + ("met" if met else "NOT met")
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.5, help="per contender and repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--model-args", type=json.loads, default={"width": 32}, help="the model's arguments, JSON")
    parser.add_argument("--format", choices=("png", "jpeg"), default="png", help="request images")
    parser.add_argument("--size", type=int, default=32, help="model input and request image size (px)")
    parser.add_argument("--max-batch", type=int, default=4, help="batching: max_batch_size")
    parser.add_argument("--timeout-micros", type=int, default=5000, help="batching: batch_timeout_micros")
    parser.add_argument(
        "--batch-threads", type=int, default=2, help="batching: num_batch_threads (and the reference's callers)"
    )
    parser.add_argument(
        "--intra-op",
        type=int,
        default=0,
        help="threads per TensorFlow op, in the servers (--tensorflow_intra_op_parallelism) and in process; "
        "0: the server's default, one",
    )
    parser.add_argument(
        "--allowed-sizes", type=int, nargs="*", help="batching: allowed_batch_sizes (default 1, 2, 4 below the max)"
    )
    parser.add_argument(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load the servers from wrk and h2load (apt-get install wrk nghttp2-client)",
    )
    args = parser.parse_args()
    missing = missing_tools() if args.native else []
    if missing:
        parser.error(f"--native needs: apt-get install {' '.join(missing)} (or pass --no-native)")
    return args


def native_contenders(args, servers: dict, image: bytes) -> dict:
    """wrk and h2load against both servers, each with ``args.clients`` connections."""
    import psutil

    from visionpipe.serving.signature import IMAGE_INPUT, SIGNATURE

    native = NativeLoad(MODEL, image, SIGNATURE, IMAGE_INPUT)
    contenders = {}
    for mode, (proc, rest_port, grpc_port) in servers.items():
        native.check_grpc_request(grpc_port)
        server = psutil.Process(proc.pid)
        for protocol, port in (("rest", rest_port), ("grpc", grpc_port)):
            run = functools.partial(with_server_cpu, server, native.run, protocol, port, args.clients, args.seconds)
            run()  # warm: the generator's connections, the server's threads
            contenders[f"{protocol} ({TOOLS[protocol]}), batching {mode}"] = (run, 1)
    return contenders


def main() -> None:
    args = parse_args()
    import psutil
    import tensorflow as tf

    from visionpipe.cli_serve import set_threads
    from visionpipe.serving.client import ServingClient
    from visionpipe.serving.served_signature import load_signature
    from visionpipe.serving.tf_serving_config import batching_parameters, write_text_proto

    set_threads(args.intra_op, 0)  # the server's own rule (0: one thread per op), in process too

    tmp = Path(tempfile.mkdtemp(prefix="serving_load_"))
    export_model(tmp, args.model, args.model_args, args.size)
    batching = tmp / "batching.config"
    sizes = [s for s in (1, 2, 4) if s < args.max_batch] + [args.max_batch]
    sizes = sizes if args.allowed_sizes is None else args.allowed_sizes
    params = batching_parameters(args.max_batch, args.timeout_micros, args.batch_threads, 100, sizes)
    write_text_proto(batching, params)
    data = images(64, args.size, args.format)
    signature = load_signature(tmp / MODEL / "1")
    one = [tf.constant([d]) for d in data]
    batch = tf.constant(data[: args.max_batch])
    signature(image_bytes=one[0]), signature(image_bytes=batch)  # trace/warm both shapes

    flags = [f"--tensorflow_intra_op_parallelism={args.intra_op}"]
    servers = {"off": start_server(tmp, None, flags), "on": start_server(tmp, batching, flags)}
    clients = {
        (protocol, mode): [
            ServingClient(f"127.0.0.1:{ports[1 if protocol == 'rest' else 2]}", MODEL, protocol=protocol, retries=0)
            for _ in range(args.clients)
        ]
        for protocol in ("rest", "grpc")
        for mode, ports in servers.items()
    }
    reference = f"in-process, batch {args.max_batch} x {args.batch_threads}"
    contenders = {  # name -> (run: one timed load -> result, images per call)
        "in-process, 1 image/call": (
            functools.partial(load, args.clients, args.seconds, lambda t, i: signature(image_bytes=one[i % len(one)])),
            1,
        ),
        reference: (
            functools.partial(load, args.batch_threads, args.seconds, lambda t, i: signature(image_bytes=batch)),
            args.max_batch,
        ),
    }
    for (protocol, mode), pool in clients.items():
        server = psutil.Process(servers[mode][0].pid)
        call = functools.partial(lambda pool, t, i: pool[t].predict([data[(t * 7 + i) % len(data)]]), pool)
        contenders[f"{protocol}, batching {mode}"] = (
            functools.partial(with_server_cpu, server, load, args.clients, args.seconds, call),
            1,
        )
    for pool in clients.values():  # connect and warm every path once
        for client in pool:
            client.predict(data[:1])
    if args.native:
        contenders.update(native_contenders(args, servers, data[0]))

    rates, latency = Rates("images/s"), {name: [] for name in contenders}
    try:
        for repeat in range(args.repeats):
            measured = {}
            for name, (run, images_per_call) in contenders.items():
                result = run()
                measured[name] = result["rate"] * images_per_call
                result["images"] = measured[name] * result["seconds"]
                latency[name].append(result)
            rates.add_repeat(repeat, measured)
    finally:
        for proc, *_ in servers.values():
            proc.terminate()
            proc.wait(timeout=30)
    time.sleep(0.5)  # the drain threads read the last lines
    server_batching = [line.strip() for line in servers["on"][0].tail if line.startswith("batching:")]
    kib = statistics.mean(map(len, data)) / 1024
    print(f"\n{args.clients} clients, {args.seconds:g} s per contender, {args.repeats} repeats, {args.model} "
          f"{args.model_args} at {args.size}x{args.size} ({args.format}, {kib:.1f} KiB); "
          f"batching: max {args.max_batch}, timeout {args.timeout_micros} us, {args.batch_threads} threads, "
          f"sizes {sizes}")  # fmt: skip
    print(f"server with batching on: {server_batching[0] if server_batching else '?'} (warm-up requests included)")
    print(rates.table({"vs 1/call": "in-process, 1 image/call", "vs reference": reference}))
    print(verdict(rates.medians(), reference, "Python clients", "rest, batching on", "grpc, batching on"))
    if args.native:
        native = ("native clients", "rest (wrk), batching on", "grpc (h2load), batching on")
        print(verdict(rates.medians(), reference, *native))
    print(f"\n{'contender':<30} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'client CPU ms/img':>18} {'server':>7}")
    for name, results in latency.items():
        p50 = statistics.median(r["p50"] for r in results)
        p99 = statistics.median(r["p99"] for r in results)
        per_image = {
            key: f"{statistics.median(1000 * r[key] / r['images'] for r in results):.2f}" if key in results[0] else "-"
            for key in ("client_cpu", "server_cpu")
        }
        print(
            f"{name:<30} {p50:>8.2f} {p99:>8.2f} {sum(r['errors'] for r in results):>7} "
            f"{per_image['client_cpu']:>18} {per_image['server_cpu']:>7}"
        )


if __name__ == "__main__":
    main()
