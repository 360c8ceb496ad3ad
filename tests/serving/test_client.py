"""The client's failure handling: transient failures are retried a bounded number of times with
backoff, then end in a clear UserError; refused requests (4xx, NOT_FOUND) are not retried."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tests.processes import free_ports
from tests.serving.conftest import MODEL, image_bytes, in_process
from visionpipe.pipeline.errors import UserError
from visionpipe.serving.client import ServingClient
from visionpipe.serving.model_store import ModelSpec


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_unreachable_server_is_retried_with_backoff_then_reported(protocol):
    (port,) = free_ports(1)  # nothing listens there
    sleeps = []
    client = ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol, retries=2, timeout=5, sleep=sleeps.append)
    with pytest.raises(UserError, match=rf"serving at 127.0.0.1:{port} \({protocol}\) failed after 3 attempts"):
        client.predict([image_bytes(0)])
    assert sleeps == [0.2, 0.4]  # exponential backoff between the attempts


def test_503_is_retried_and_the_servers_message_reported():
    hits = []

    class Busy(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b'{"error": "overloaded, try later"}'
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sleeps = []
        client = ServingClient(f"127.0.0.1:{server.server_address[1]}", MODEL, retries=3, sleep=sleeps.append)
        with pytest.raises(UserError, match="after 4 attempts: HTTP 503 .*overloaded, try later"):
            client.predict([image_bytes(0)])
        assert hits == [f"/v1/models/{MODEL}:predict"] * 4 and len(sleeps) == 3
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_refused_requests_are_not_retried(serve, base_path, protocol):
    server = serve([ModelSpec(MODEL, base_path)])
    port = server.rest_port if protocol == "rest" else server.grpc_port
    sleeps = []
    unknown = ServingClient(f"127.0.0.1:{port}", "nope", protocol=protocol, sleep=sleeps.append)
    with pytest.raises(UserError, match=r"refused the request: (HTTP 404|NOT_FOUND).*nope"):
        unknown.predict([image_bytes(0)])
    wrong_version = ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol, version=5, sleep=sleeps.append)
    with pytest.raises(UserError, match=r"(HTTP 404|NOT_FOUND).*Could not find version 5 of model tiny"):
        wrong_version.status()
    assert sleeps == []
    good = ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol, version=1)
    assert np.allclose(good.predict([image_bytes(0)]).probabilities, in_process(base_path / "1", [image_bytes(0)]))


def test_bad_addresses_are_user_errors():
    with pytest.raises(UserError, match="not HOST:PORT"):
        ServingClient("localhost", MODEL)
    with pytest.raises(UserError, match="not one of rest, grpc"):
        ServingClient("localhost:1", MODEL, protocol="soap")
    with pytest.raises(UserError, match="not both"):
        ServingClient("localhost:1", MODEL, version=1, label="stable")
