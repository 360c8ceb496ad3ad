"""Load from native load generators: wrk (REST) and h2load (gRPC), as TF Serving is measured.

A Python client costs 0.2-0.6 ms of CPU per request; on a 2-core machine that CPU comes out of
the server's share, so a Python load generator measures the client as much as the server.
wrk (HTTP/1.1) and h2load (HTTP/2, nghttp2) spend a small fraction of that per request, so their
rate is the server's. Both run in their own process with ``clients`` connections, one request
in flight on each, and send the same request body every time: the one-image TF Serving request
``serving_load`` sends (JSON with base64 for REST; a framed PredictRequest for gRPC).

Debian: ``apt-get install wrk nghttp2-client``.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

from ratios import p50_p99

TOOLS = {"rest": "wrk", "grpc": "h2load"}
PACKAGES = {"wrk": "wrk", "h2load": "nghttp2-client"}


def missing_tools() -> list[str]:
    """The Debian packages to install for the tools this machine lacks."""
    return [PACKAGES[tool] for tool in TOOLS.values() if shutil.which(tool) is None]


class NativeLoad:
    """Request files for one model and one image, and ``run`` for either protocol."""

    def __init__(self, model: str, image: bytes, signature: str, input_name: str):
        import base64

        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        self.model = model
        self.folder = Path(tempfile.mkdtemp(prefix="native_load_"))
        rest_body = {"signature_name": signature, "instances": [{"b64": base64.b64encode(image).decode()}]}
        (self.folder / "rest.json").write_text(json.dumps(rest_body))
        # wrk sends GET without a body unless a script says otherwise
        (self.folder / "post.lua").write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'local f = io.open("{self.folder / "rest.json"}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        )
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = model, signature
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))  # as ServingClient
        self.grpc_request = request
        message = request.SerializeToString()
        # gRPC's length-prefixed message: no compression flag, 4-byte big-endian length
        (self.folder / "grpc.bin").write_bytes(b"\0" + len(message).to_bytes(4, "big") + message)

    def run(self, protocol: str, port: int, clients: int, seconds: float) -> dict:
        """rate (requests/s), p50 and p99 (ms), errors, client_cpu and seconds of one timed run
        (whole seconds: wrk takes no fractions)."""
        seconds = max(1, round(seconds))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = (self._wrk if protocol == "rest" else self._h2load)(port, clients, seconds)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["client_cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return {**result, "seconds": seconds}

    def _wrk(self, port: int, clients: int, seconds: int) -> dict:
        url = f"http://127.0.0.1:{port}/v1/models/{self.model}:predict"
        command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(self.folder / "post.lua")]
        out = _run([*command, url])
        statuses = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        return {
            "rate": float(_field(r"Requests/sec:\s+([\d.]+)", out)),
            "p50": _milliseconds(_field(r"\n\s+50%\s+(\S+)", out)),
            "p99": _milliseconds(_field(r"\n\s+99%\s+(\S+)", out)),
            "errors": (int(statuses[1]) if statuses else 0) + (sum(map(int, sockets.groups())) if sockets else 0),
        }

    def _h2load(self, port: int, clients: int, seconds: int) -> dict:
        url = f"http://127.0.0.1:{port}/tensorflow.serving.PredictionService/Predict"
        log = self.folder / "h2load.log"
        command = ["h2load", f"-D{seconds}", f"-c{clients}", "-m1", "-t1", f"--data={self.folder / 'grpc.bin'}"]
        command += ["-H", "content-type: application/grpc", "-H", "te: trailers", f"--log-file={log}", url]
        out = _run(command)
        # log lines: start time, HTTP status, duration in microseconds. h2load reads HTTP
        # statuses only, not grpc-status: check_grpc_request shows the request itself succeeds.
        p50, p99 = p50_p99([int(line.split("\t")[2]) / 1000 for line in log.read_text().splitlines() if line])
        done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
        return {
            "rate": float(_field(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)),
            "p50": p50,
            "p99": p99,
            "errors": int(done[3]) if done else 0,
        }

    def check_grpc_request(self, port: int) -> None:
        """Sends the very PredictRequest h2load sends through grpcio once: an error raises."""
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(self.grpc_request, timeout=60)


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    return done.stdout


def _field(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"no {pattern!r} in the load generator's output:\n{text}")
    return match[1]


def _milliseconds(value: str) -> float:
    """wrk's durations: 812.00us, 9.33ms, 1.02s, 2.00m."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
