"""One loaded SavedModel version, and the errors a serving request can end in.

A ``Servable`` is what the development server serves: the SavedModel's signatures (called as
TF Serving calls them: named tensors in, named tensors out) and their ``SignatureDef`` protos
(read from ``saved_model.pb``, so metadata answers are the very protos TF Serving returns).
``ServingError`` carries a ``Code`` that both the REST and the gRPC front ends translate, so a
request fails the same way whichever protocol it came by.
"""

from __future__ import annotations

import enum
from pathlib import Path

import grpc
import numpy as np

from visionpipe.serving.signature import SIGNATURE


class Code(enum.Enum):
    """The error codes the server uses, with the HTTP status TF Serving's REST API maps each to
    (model_servers/http_rest_api_util) and the gRPC status it returns."""

    INVALID_ARGUMENT = (400, grpc.StatusCode.INVALID_ARGUMENT)
    FAILED_PRECONDITION = (400, grpc.StatusCode.FAILED_PRECONDITION)
    NOT_FOUND = (404, grpc.StatusCode.NOT_FOUND)
    PAYLOAD_TOO_LARGE = (413, grpc.StatusCode.RESOURCE_EXHAUSTED)
    UNIMPLEMENTED = (501, grpc.StatusCode.UNIMPLEMENTED)
    UNAVAILABLE = (503, grpc.StatusCode.UNAVAILABLE)
    INTERNAL = (500, grpc.StatusCode.INTERNAL)

    @property
    def http_status(self) -> int:
        return self.value[0]

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return self.value[1]


class ServingError(Exception):
    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Servable:
    """A SavedModel version loaded for serving. Thread-safe: TF concrete functions may be called
    from several threads at once."""

    def __init__(self, name: str, version: int, path: Path):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.name, self.version, self.path = name, version, path
        self._loaded = tf.saved_model.load(str(path))  # keeps the variables alive
        saved = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
        self.signature_defs = {
            key: sig for key, sig in saved.meta_graphs[0].signature_def.items() if not key.startswith("__")
        }
        self._functions = {key: self._loaded.signatures[key] for key in self.signature_defs}

    def signature(self, name: str, rest: bool = False):
        """The SignatureDef called ``name`` ("" means serving_default, as in TF Serving). An
        unknown name is refused as TF Serving refuses it: over REST INVALID_ARGUMENT (its REST
        handler looks the signature up first), over gRPC FAILED_PRECONDITION (predict_util)."""
        name = name or SIGNATURE
        if name not in self.signature_defs:
            has = f"(this model has: {', '.join(sorted(self.signature_defs))})"
            if rest:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f'Serving signature name: "{name}" not found in signature def {has}'
                )
            raise ServingError(Code.FAILED_PRECONDITION, f'Serving signature key "{name}" not found. {has}')
        return name, self.signature_defs[name]

    def run(self, signature_name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Calls a signature on named arrays (every input of the signature, nothing else); returns
        its named outputs as arrays. Bad inputs raise ``ServingError(INVALID_ARGUMENT)``."""
        import tensorflow as tf

        name, signature = self.signature(signature_name)
        expected = set(signature.inputs)
        if set(inputs) != expected:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"input size does not match signature: {len(inputs)}!={len(expected)} for inputs "
                f"{sorted(inputs)}; the signature {name} takes {sorted(expected)}"
                + (f"; sent extra: {sorted(set(inputs) - expected)}" if set(inputs) - expected else "")
                + (f"; missing: {sorted(expected - set(inputs))}" if expected - set(inputs) else ""),
            )
        function = self._functions[name]
        specs = function.structured_input_signature[1]
        tensors = {}
        for key, value in inputs.items():
            spec = specs[key]
            try:
                tensors[key] = tf.constant(value, dtype=spec.dtype)
            except (TypeError, ValueError) as err:
                raise ServingError(Code.INVALID_ARGUMENT, f"input {key}: expected {spec.dtype.name}: {err}") from None
            if not spec.shape.is_compatible_with(tensors[key].shape):
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"input {key}: shape {tensors[key].shape.as_list()} does not match {spec.shape}",
                )
        try:
            outputs = function(**tensors)
        except tf.errors.InvalidArgumentError as err:
            # e.g. bytes that are no image: "Unknown image file format. One of JPEG, PNG, GIF, BMP required."
            raise ServingError(Code.INVALID_ARGUMENT, _op_message(err.message)) from None
        return {key: value.numpy() for key, value in outputs.items()}

    def warm_up(self) -> int:
        """Replays the version's ``assets.extra/tf_serving_warmup_requests`` (push writes them)
        as TF Serving does before it marks a version available; returns how many ran. A failing
        record fails the load, as it does in TF Serving."""
        import tensorflow as tf

        from visionpipe.serving.warmup import read_warmup, warmup_path

        path = warmup_path(self.path)
        if not path.is_file():
            return 0
        logs = read_warmup(path)
        for log in logs:
            request = log.predict_log.request
            self.run(request.model_spec.signature_name, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        return len(logs)

    def rows(self, inputs: dict[str, np.ndarray]) -> int:
        """The batch size of a request (every input's first dimension; they must agree)."""
        sizes = {np.shape(value)[0] if np.ndim(value) else 1 for value in inputs.values()}
        if len(sizes) != 1:
            raise ServingError(Code.INVALID_ARGUMENT, f"inputs have different batch sizes: {sorted(sizes)}")
        return sizes.pop()


def _op_message(message: str) -> str:
    """The op's own error out of TensorFlow's "Graph execution error: Detected at node ..."
    wrapping (the node and stack lines mean nothing to a client)."""
    noise = ("Graph execution error", "Detected at node", "<stack traces", "\t", " ")
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(noise)]
    return lines[-1] if lines else message.strip()
