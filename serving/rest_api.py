"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest) over ``ServingCore``.

    GET  /v1/models/NAME[/versions/N | /labels/L]            model version status
    GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   signature defs
    POST /v1/models/NAME[/versions/N | /labels/L]:predict    {"instances": [...]} or {"inputs": ...}

Binary inputs are ``{"b64": "..."}``; string outputs whose name ends in ``_bytes`` come back
the same way. Errors are ``{"error": "..."}`` with the HTTP status TF Serving uses. A body over
the size limit is refused (413) before it is read.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import numpy as np
from google.protobuf import json_format

from visionpipe.serving.servable import Code, ServingError

if TYPE_CHECKING:
    from visionpipe.serving.server import ServingCore

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[a-z]+))?/?$"
)


class _Server(ThreadingHTTPServer):
    # Connection threads are daemons: an idle keep-alive connection must not block shutdown.
    # Requests being answered are counted instead, so stop() can let them finish.
    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.in_flight = 0
        self.idle = threading.Condition()


def start(core, host: str, port: int, options) -> _Server:
    """Serves in a daemon thread; the returned server's ``server_address`` has the bound port."""
    handler = type("Handler", (_Handler,), {"core": core, "max_body_bytes": options.max_body_bytes})
    server = _Server((host, port), handler)
    threading.Thread(target=server.serve_forever, name="rest-api", daemon=True).start()
    return server


def stop(server: _Server, grace: float) -> None:
    """Stops accepting connections, waits up to ``grace`` seconds for requests being answered."""
    server.shutdown()
    with server.idle:
        server.idle.wait_for(lambda: server.in_flight == 0, timeout=grace)
    server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of TF Serving expect
    # The status line + headers and the body are two writes: without TCP_NODELAY, Nagle's
    # algorithm holds the body until the client's delayed ACK, ~40 ms per keep-alive request.
    disable_nagle_algorithm = True
    server: _Server  # the server that made this handler (the base class says only BaseServer)
    core: ServingCore  # set on the subclass start() makes
    max_body_bytes = 0

    def log_message(self, format, *args):  # noqa: A002  (the request log is separate)
        pass

    def do_GET(self):
        self._answer(self._get)

    def do_POST(self):
        self._answer(self._post)

    def _answer(self, handle) -> None:
        with self.server.idle:
            self.server.in_flight += 1
        try:
            self._respond(handle)
        finally:
            with self.server.idle:
                self.server.in_flight -= 1
                self.server.idle.notify_all()

    def _respond(self, handle) -> None:
        try:
            status, body = 200, handle()
        except ServingError as err:
            status, body = err.code.http_status, {"error": err.message}
        except Exception as err:  # a bug: say so, keep serving
            status, body = 500, {"error": f"internal error: {type(err).__name__}: {err}"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _route(self):
        match = _PATH.match(self.path.split("?")[0])
        if not match:
            raise ServingError(Code.NOT_FOUND, f"Malformed request: {self.command} {self.path}")
        version = match["version"]
        if version is not None and not version.isdigit():
            raise ServingError(Code.INVALID_ARGUMENT, f"Malformed request: version {version!r} is not a number")
        return match, int(version) if version is not None else None

    def _get(self) -> dict:
        match, version = self._route()
        if match["verb"]:
            raise ServingError(Code.INVALID_ARGUMENT, f"Malformed request: GET {self.path}; :{match['verb']} is a POST")
        if match["metadata"]:
            servable, signatures = self.core.metadata(match["name"], version, match["label"])
            return {
                "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
                "metadata": {"signature_def": json_format.MessageToDict(signatures, preserving_proto_field_name=True)},
            }
        status = self.core.status(match["name"], version, match["label"])
        return json_format.MessageToDict(
            status, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    def _post(self) -> dict:
        body = self._read_body()  # always read (or refuse) the body, so keep-alive stays in step
        match, version = self._route()
        if match["verb"] != "predict":
            raise ServingError(
                Code.UNIMPLEMENTED if match["verb"] in ("classify", "regress") else Code.INVALID_ARGUMENT,
                f"Malformed request: POST {self.path}; this server implements :predict",
            )
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ServingError(Code.INVALID_ARGUMENT, f"JSON Parse error: {err}") from None
        if not isinstance(request, dict):
            raise ServingError(Code.INVALID_ARGUMENT, "JSON Parse error: the request must be a JSON object")
        signature = request.get("signature_name", "")
        servable = self.core.store.resolve(match["name"], version, match["label"])
        name, signature_def = servable.signature(signature, rest=True)
        inputs, row_format = decode_predict_request(request, list(signature_def.inputs))
        outputs = self.core.run(servable, name, inputs)
        return _response(outputs, row_format)

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise ServingError(Code.INVALID_ARGUMENT, "Malformed request: a POST needs a Content-Length")
        if int(length) > self.max_body_bytes:
            self.close_connection = True  # the unread body must not be parsed as the next request
            raise ServingError(
                Code.PAYLOAD_TOO_LARGE,
                f"request body of {int(length)} bytes exceeds the limit of {self.max_body_bytes}",
            )
        return self.rfile.read(int(length))


def decode_predict_request(request: dict, input_names: list[str]) -> tuple[dict[str, np.ndarray], bool]:
    """A parsed ``:predict`` body's input tensors, decoded as TF Serving decodes them, and
    whether it was in row format; push's infra validation decodes its REST body with this too."""
    row_format = _request_format(request)
    return (_rows if row_format else _columns)(request, input_names), row_format


def _request_format(request: dict) -> bool:
    """True for the row format (``instances``), False for the columnar one (``inputs``)."""
    keys = {"instances", "inputs"} & set(request)
    if len(keys) != 1:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            "JSON Value: the request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)",
        )
    return keys == {"instances"}


def _decode(value, name: str):
    """JSON value -> nested lists with ``{"b64": ...}`` objects replaced by bytes."""
    if isinstance(value, list):
        return [_decode(v, name) for v in value]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise ServingError(Code.INVALID_ARGUMENT, f'input {name}: a JSON object here must be {{"b64": "..."}}')
        try:
            text = value["b64"]  # TF Serving (absl::Base64Unescape) also takes it without the = padding
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as err:
            raise ServingError(Code.INVALID_ARGUMENT, f"input {name}: unable to base64-decode: {err}") from None
    if isinstance(value, str):
        return value.encode()
    return value


def _array(values, name: str) -> np.ndarray:
    array = np.array(values, dtype=object if _has_bytes(values) else None)
    if array.dtype == object and not _has_bytes(values):
        raise ServingError(Code.INVALID_ARGUMENT, f"input {name}: ragged or mixed values")
    return array


def _has_bytes(values) -> bool:
    while isinstance(values, list) and values:
        values = values[0]
    return isinstance(values, bytes)


def _rows(request: dict, input_names: list[str]) -> dict[str, np.ndarray]:
    instances = request["instances"]
    if not isinstance(instances, list) or not instances:
        raise ServingError(Code.INVALID_ARGUMENT, "JSON Value: 'instances' must be a non-empty list")
    columns: dict[str, list] = {}
    for i, instance in enumerate(instances):
        named = isinstance(instance, dict) and not (set(instance) == {"b64"} and len(input_names) == 1)
        if not named:
            if len(input_names) != 1:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"instance {i}: this signature has several inputs; name them {input_names}"
                )
            instance = {input_names[0]: instance}
        if set(instance) != set(input_names):
            unknown = sorted(set(instance) - set(input_names))
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"Failed to process element: {i} of 'instances' list. JSON object: "
                + (f"does not have named input: {unknown[0]}" if unknown else "is missing inputs")
                + f"; the signature's inputs are {input_names}",
            )
        for key, value in instance.items():
            columns.setdefault(key, []).append(_decode(value, key))
    return {key: _array(values, key) for key, values in columns.items()}


def _columns(request: dict, input_names: list[str]) -> dict[str, np.ndarray]:
    inputs = request["inputs"]
    if not (isinstance(inputs, dict) and set(inputs) - {"b64"}):
        if len(input_names) != 1:
            raise ServingError(Code.INVALID_ARGUMENT, f"'inputs' must name this signature's inputs {input_names}")
        inputs = {input_names[0]: inputs}
    if set(inputs) != set(input_names):
        unknown = sorted(set(inputs) - set(input_names))
        problem = f"does not have named input: {unknown[0]}" if unknown else "is missing inputs"
        raise ServingError(Code.INVALID_ARGUMENT, f"JSON object: {problem}; the signature's inputs are {input_names}")
    return {key: _array(_decode(value, key), key) for key, value in inputs.items()}


def _encode(array: np.ndarray, name: str):
    if array.dtype == object or array.dtype.kind == "S":
        as_b64 = name.endswith("_bytes")
        flat = [
            {"b64": base64.b64encode(v).decode()} if as_b64 else v.decode("utf-8", "replace") for v in array.ravel()
        ]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def _response(outputs: dict[str, np.ndarray], row_format: bool) -> dict:
    """TF Serving's shapes: one output -> its values alone; several -> named (per row, or columns)."""
    encoded = {key: _encode(value, key) for key, value in outputs.items()}
    if not row_format:
        return {"outputs": next(iter(encoded.values())) if len(encoded) == 1 else encoded}
    if len(encoded) == 1:
        return {"predictions": next(iter(encoded.values()))}
    rows = len(next(iter(encoded.values())))
    return {"predictions": [{key: values[i] for key, values in encoded.items()} for i in range(rows)]}
