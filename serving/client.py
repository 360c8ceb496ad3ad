"""A client for TF Serving (the official server or ``visionpipe serve``), over REST or gRPC.

    client = ServingClient("localhost:8501", "visionpipe")               # REST
    client = ServingClient("localhost:8500", "visionpipe", protocol="grpc", label="canary")
    result = client.predict([open("cat.jpg", "rb").read()])
    result.probabilities  # [N, C] float32;  result.classes  # the C class names
    client.status(); client.metadata()

Transient failures (server unreachable, 503 / UNAVAILABLE, DEADLINE_EXCEEDED) are retried
``retries`` times with exponential backoff; a refused request (4xx, INVALID_ARGUMENT,
NOT_FOUND) is not, since sending it again cannot help. Every failure ends in a ``UserError``
carrying the server's own message. REST uses the standard library's http.client with one
keep-alive connection per thread.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from visionpipe.pipeline.errors import UserError
from visionpipe.serving.signature import CLASSES, IMAGE_INPUT, PROBABILITIES, SIGNATURE, THRESHOLDS

PROTOCOLS = ("rest", "grpc")
_RETRY_HTTP = {502, 503, 504}


@dataclasses.dataclass
class PredictResult:
    probabilities: np.ndarray  # [N, C]
    classes: list[str]  # the model's C class names, in probability order
    thresholds: np.ndarray | None = None  # [C]: a multi-label model's decision thresholds

    def top(self, k: int) -> list[list[tuple[str, float]]]:
        """Per image, the k most probable (class, probability)."""
        return [[(self.classes[i], float(p[i])) for i in np.argsort(-p)[:k]] for p in self.probabilities]

    def above_thresholds(self) -> list[list[str]] | None:
        """Per image, a multi-label model's labels at or above their thresholds (None otherwise)."""
        if self.thresholds is None:
            return None
        return [[self.classes[i] for i in np.flatnonzero(p >= self.thresholds)] for p in self.probabilities]


class _Transient(Exception):
    """A failure worth retrying; its message says what happened."""


class ServingClient:
    def __init__(
        self,
        host_port: str,
        model_name: str,
        protocol: str = "rest",
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if protocol not in PROTOCOLS:
            raise UserError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if version is not None and label:
            raise UserError("address a model by version or by label, not both")
        host, _, port = host_port.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"server address {host_port!r} is not HOST:PORT")
        self.host, self.port = host, int(port)
        self.model_name, self.protocol, self.version, self.label = model_name, protocol, version, label
        self.timeout, self.retries, self.backoff, self._sleep = timeout, retries, backoff, sleep
        self._local = threading.local()
        self._channel = None
        self._stubs: dict = {}
        self._channel_lock = threading.Lock()

    # the API ------------------------------------------------------------------------------
    def predict(self, images: Sequence[bytes], signature: str = SIGNATURE) -> PredictResult:
        """Class probabilities of encoded JPEG/PNG images."""
        if self.protocol == "rest":
            body = {"signature_name": signature, "instances": [{"b64": base64.b64encode(b).decode()} for b in images]}
            rows = self._call(lambda: self._rest("POST", ":predict", body))["predictions"]
            probabilities = np.array([r[PROBABILITIES] for r in rows], np.float32)
            classes = list(rows[0][CLASSES]) if rows else []
            thresholds = np.array(rows[0][THRESHOLDS], np.float32) if rows and THRESHOLDS in rows[0] else None
            return PredictResult(probabilities, classes, thresholds)
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._model_spec(request.model_spec)
        request.model_spec.signature_name = signature
        request.inputs[IMAGE_INPUT].CopyFrom(tf.make_tensor_proto(list(images), dtype=tf.string))
        response = self._call(lambda: self._grpc("PredictionService", "Predict", request))
        classes = tf.make_ndarray(response.outputs[CLASSES])
        thresholds = tf.make_ndarray(response.outputs[THRESHOLDS]) if THRESHOLDS in response.outputs else None
        return PredictResult(
            tf.make_ndarray(response.outputs[PROBABILITIES]),
            [c.decode() for c in classes[0]] if len(classes) else [],
            thresholds[0] if thresholds is not None and len(thresholds) else None,
        )

    def status(self) -> list[dict]:
        """Per version: {"version": int, "state": "AVAILABLE" | "LOADING" | ..., "error": str}."""
        if self.protocol == "rest":
            answer = self._call(lambda: self._rest("GET", "", None))
            return [
                {
                    "version": int(s["version"]),
                    "state": s["state"],
                    "error": s.get("status", {}).get("error_message", ""),
                }
                for s in answer["model_version_status"]
            ]
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._model_spec(request.model_spec)
        response = self._call(lambda: self._grpc("ModelService", "GetModelStatus", request))
        states = get_model_status_pb2.ModelVersionStatus.State
        return [
            {"version": s.version, "state": states.Name(s.state), "error": s.status.error_message}
            for s in response.model_version_status
        ]

    def metadata(self) -> dict:
        """{"version": int, "signature_def": {name: SignatureDef as a dict}} of the addressed version."""
        from google.protobuf import json_format

        if self.protocol == "rest":
            answer = self._call(lambda: self._rest("GET", "/metadata", None))
            return {
                "version": int(answer["model_spec"]["version"]),
                "signature_def": answer["metadata"]["signature_def"]["signature_def"],
            }
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._model_spec(request.model_spec)
        response = self._call(lambda: self._grpc("PredictionService", "GetModelMetadata", request))
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        as_dict = json_format.MessageToDict(signatures, preserving_proto_field_name=True)
        return {"version": response.model_spec.version.value, "signature_def": as_dict["signature_def"]}

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        if self._channel is not None:
            self._channel.close()

    # retries ------------------------------------------------------------------------------
    def _call(self, attempt):
        for n in range(self.retries + 1):
            try:
                return attempt()
            except _Transient as err:
                if n == self.retries:
                    raise UserError(
                        f"serving at {self.host}:{self.port} ({self.protocol}) failed after "
                        f"{self.retries + 1} attempts: {err}"
                    ) from None
                self._sleep(self.backoff * 2**n)

    @property
    def _where(self) -> str:
        if self.label:
            return f"/labels/{self.label}"
        return f"/versions/{self.version}" if self.version is not None else ""

    # REST ---------------------------------------------------------------------------------
    def _rest(self, method: str, suffix: str, body: dict | None) -> dict:
        path = f"/v1/models/{self.model_name}{self._where}{suffix}"
        data = json.dumps(body).encode() if body is not None else None
        try:
            connection = self._connection()
            connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._local.connection = None  # a broken keep-alive connection is not reused
            raise _Transient(f"cannot reach the server: {err}") from None
        try:
            answer = json.loads(payload)
        except json.JSONDecodeError:
            answer = {"error": payload[:200].decode("utf-8", "replace")}
        if response.status == 200:
            return answer
        message = f"HTTP {response.status} from {method} {path}: {answer.get('error', answer)}"
        if response.status in _RETRY_HTTP:
            raise _Transient(message)
        raise UserError(f"the server refused the request: {message}")

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self._local, "connection", None) is None:
            self._local.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._local.connection

    # gRPC ---------------------------------------------------------------------------------
    def _model_spec(self, spec) -> None:
        spec.name = self.model_name
        if self.version is not None:
            spec.version.value = self.version
        elif self.label:
            spec.version_label = self.label

    def _grpc(self, service: str, method: str, request):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        with self._channel_lock:  # one channel (it multiplexes calls) shared by every thread
            if self._channel is None:
                self._channel = grpc.insecure_channel(
                    f"{self.host}:{self.port}", options=[("grpc.max_receive_message_length", 256 << 20)]
                )
                self._stubs = {
                    "PredictionService": prediction_service_pb2_grpc.PredictionServiceStub(self._channel),
                    "ModelService": model_service_pb2_grpc.ModelServiceStub(self._channel),
                }
        call = getattr(self._stubs[service], method)
        try:
            return call(request, timeout=self.timeout)
        except grpc.RpcError as err:
            message = f"{err.code().name} from {service}.{method}: {err.details()}"
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise _Transient(message) from None
            raise UserError(f"the server refused the request: {message}") from None
