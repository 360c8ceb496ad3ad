"""TF Serving's gRPC API over ``ServingCore``, with the real tensorflow_serving service stubs.

PredictionService.Predict and GetModelMetadata, ModelService.GetModelStatus; a request
addresses a model by ``model_spec`` (name, and optionally version or version_label) exactly
as with tensorflow_model_server, and errors carry the same gRPC status codes
(INVALID_ARGUMENT, NOT_FOUND, ...). Other methods (Classify, Regress, MultiInference,
HandleReloadConfigRequest) answer UNIMPLEMENTED, the generated servicer's default.
"""

from __future__ import annotations

from concurrent import futures

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from visionpipe.serving.servable import Code, ServingError


def start(core, addresses: list[str], options) -> tuple[grpc.Server, int]:
    """A started server listening on each address (``host:port``, ``unix:path``) and the port
    the first one bound."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.grpc_max_workers, thread_name_prefix="grpc-api"),
        options=[
            ("grpc.max_receive_message_length", options.max_body_bytes),
            ("grpc.max_send_message_length", options.max_body_bytes),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(core, options.tensor_content), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(core), server)
    bound = [server.add_insecure_port(address) for address in addresses]
    for address, port in zip(addresses, bound, strict=True):
        if port == 0:
            raise OSError(f"cannot listen for gRPC on {address}")
    server.start()
    return server, bound[0]


# The repeated field TensorFlow's Tensor::AsProtoField fills for each dtype (tensor.proto).
_FIELDS = {
    **dict.fromkeys(map(np.dtype, (np.int8, np.uint8, np.int16, np.uint16, np.int32)), "int_val"),
    np.dtype(np.float32): "float_val",
    np.dtype(np.float64): "double_val",
    np.dtype(np.int64): "int64_val",
    np.dtype(np.uint32): "uint32_val",
    np.dtype(np.uint64): "uint64_val",
    np.dtype(np.bool_): "bool_val",
}


def as_proto_field(array: np.ndarray):
    """An output tensor as TF Serving answers it: values in the dtype's typed field (float_val,
    string_val, ...), which clients read directly (``outputs["probabilities"].float_val``);
    ``tf.make_tensor_proto`` packs numbers into ``tensor_content`` instead, which TF Serving
    sends only with --enable_serialization_as_tensor_content."""
    import tensorflow as tf

    array = np.asarray(array)
    field = "string_val" if array.dtype.kind in "OSU" else _FIELDS.get(array.dtype)
    if field is None:  # half, complex, ...: TensorFlow's own conversion
        return tf_tensor_proto(array)
    proto = tensor_pb2.TensorProto(
        dtype=tf.string.as_datatype_enum if field == "string_val" else tf.as_dtype(array.dtype).as_datatype_enum
    )
    proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape)
    values = array.ravel().tolist()
    if field == "string_val":
        values = [v if isinstance(v, bytes) else str(v).encode() for v in values]
    getattr(proto, field).extend(values)
    return proto


def tf_tensor_proto(array: np.ndarray):
    """TensorFlow's own conversion: numbers packed into ``tensor_content``."""
    import tensorflow as tf

    return tf.make_tensor_proto(array)


def _addressed(model_spec) -> tuple[str, int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _fail(context, err: ServingError):
    context.abort(err.code.grpc_status, err.message)


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core, tensor_content: bool = False):
        self.core = core
        # --enable_serialization_as_tensor_content: TensorFlow's packed bytes, as TF Serving then sends
        self._output_proto = tf_tensor_proto if tensor_content else as_proto_field

    def Predict(self, request, context):
        import tensorflow as tf

        try:
            name, version, label = _addressed(request.model_spec)
            try:
                inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            except (TypeError, ValueError) as err:
                raise ServingError(Code.INVALID_ARGUMENT, f"cannot read the input tensors: {err}") from None
            servable, signature, outputs = self.core.predict(
                name, version, label, request.model_spec.signature_name, inputs
            )
            wanted = list(request.output_filter) or list(outputs)
            unknown = [key for key in wanted if key not in outputs]
            if unknown:
                raise ServingError(Code.INVALID_ARGUMENT, f"output tensor alias not found in signature: {unknown[0]}")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature
            for key in wanted:
                response.outputs[key].CopyFrom(self._output_proto(outputs[key]))
            return response
        except ServingError as err:
            _fail(context, err)

    def GetModelMetadata(self, request, context):
        try:
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    f"metadata_field must be ['signature_def'], not {list(request.metadata_field)}",
                )
            servable, signatures = self.core.metadata(*_addressed(request.model_spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(signatures)
            return response
        except ServingError as err:
            _fail(context, err)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core):
        self.core = core

    def GetModelStatus(self, request, context):
        try:
            return self.core.status(*_addressed(request.model_spec))
        except ServingError as err:
            _fail(context, err)
