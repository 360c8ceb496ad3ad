"""The development server answers like TF Serving: same predictions over REST and gRPC as the
signature in process, TF Serving's JSON shapes, labels from models.config, and the right
4xx / gRPC code with a message for each malformed request (and keeps serving after it)."""

from __future__ import annotations

import base64
import http.client
import json
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.serving.conftest import CLASSES, MODEL, image_bytes, in_process, push_version
from visionpipe.pipeline.errors import UserError
from visionpipe.serving.client import ServingClient
from visionpipe.serving.model_store import ModelSpec, specs_from_config_text

IMAGES = [image_bytes(i, size=(12 + i, 10)) for i in range(4)] + [image_bytes(9, fmt="JPEG")]


def rest(port: int, method: str, path: str, body=None, raw: bytes | None = None):
    """(status, parsed JSON) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    connection.request(method, path, body=data)
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


def b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


def test_rest_and_grpc_predict_like_the_signature_in_process(serve, base_path):
    server = serve([ModelSpec(MODEL, base_path)])
    expected = in_process(base_path / "1", IMAGES)
    for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
        result = ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol).predict(IMAGES)
        assert result.probabilities.shape == (len(IMAGES), len(CLASSES))
        assert np.allclose(result.probabilities, expected, atol=1e-6), protocol
        assert result.classes == CLASSES

    # the other JSON shapes TF Serving accepts: named row input, columnar, explicit signature
    status, named = rest(
        server.rest_port, "POST", f"/v1/models/{MODEL}:predict", {"instances": [{"image_bytes": b64(IMAGES[0])}]}
    )
    assert status == 200 and np.allclose(named["predictions"][0]["probabilities"], expected[0], atol=1e-6)
    assert named["predictions"][0]["predicted_class"] == CLASSES[int(np.argmax(expected[0]))]
    status, columns = rest(
        server.rest_port,
        "POST",
        f"/v1/models/{MODEL}/versions/1:predict",
        {"signature_name": "serving_default", "inputs": {"image_bytes": [b64(b) for b in IMAGES]}},
    )
    assert status == 200 and np.allclose(columns["outputs"]["probabilities"], expected, atol=1e-6)
    status, pre = rest(
        server.rest_port,
        "POST",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "preprocess", "inputs": [b64(IMAGES[0])]},
    )
    assert status == 200 and np.array(pre["outputs"]).shape == (1, 8, 8, 3)  # one output: its values alone
    # base64 without its = padding, which TF Serving takes (absl::Base64Unescape)
    unpadded = [{"b64": b64(b)["b64"].rstrip("=")} for b in IMAGES]
    assert any(u["b64"] != b64(b)["b64"] for u, b in zip(unpadded, IMAGES, strict=True))
    status, loose = rest(server.rest_port, "POST", f"/v1/models/{MODEL}:predict", {"instances": unpadded})
    assert status == 200 and np.allclose([p["probabilities"] for p in loose["predictions"]], expected, atol=1e-6)


def test_grpc_outputs_come_in_typed_fields_or_packed_as_tf_serving_sends_them(serve, base_path):
    # TF Serving fills float_val / string_val (Tensor::AsProtoField), and client code reads them
    # directly; packed tensor_content only comes with --enable_serialization_as_tensor_content.
    server = serve([ModelSpec(MODEL, base_path)])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(IMAGES[:2], dtype=tf.string))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    probabilities, classes = response.outputs["probabilities"], response.outputs["classes"]
    assert not probabilities.tensor_content and not classes.tensor_content
    assert [d.size for d in probabilities.tensor_shape.dim] == [2, len(CLASSES)]
    expected = in_process(base_path / "1", IMAGES[:2])
    assert np.allclose(np.reshape(probabilities.float_val, (2, -1)), expected, atol=1e-6)
    assert list(classes.string_val) == [c.encode() for c in CLASSES] * 2
    assert probabilities.dtype == tf.float32.as_datatype_enum and classes.dtype == tf.string.as_datatype_enum
    channel.close()

    # --enable_serialization_as_tensor_content: packed, as TF Serving then sends them
    packed = serve([ModelSpec(MODEL, base_path)], tensor_content=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{packed.grpc_port}")
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    assert response.outputs["probabilities"].tensor_content and not response.outputs["probabilities"].float_val
    assert np.allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, atol=1e-6)
    channel.close()


def test_keep_alive_rest_requests_do_not_wait_for_delayed_acks(serve, base_path):
    """Without TCP_NODELAY on the server, every keep-alive request waited ~40 ms (Nagle's
    algorithm against the client's delayed ACK): the REST API ran at a tenth of its speed."""
    server = serve([ModelSpec(MODEL, base_path)])
    client = ServingClient(f"127.0.0.1:{server.rest_port}", MODEL)
    client.predict(IMAGES[:1])
    seconds = []
    for _ in range(15):
        start = time.perf_counter()
        client.predict(IMAGES[:1])
        seconds.append(time.perf_counter() - start)
    assert sorted(seconds)[len(seconds) // 2] < 0.025, seconds


def test_status_and_metadata_over_both_protocols(serve, base_path):
    server = serve([ModelSpec(MODEL, base_path)])
    status, answer = rest(server.rest_port, "GET", f"/v1/models/{MODEL}")
    assert status == 200
    assert answer == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    for protocol, port in (("rest", server.rest_port), ("grpc", server.grpc_port)):
        client = ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol)
        assert client.status() == [{"version": 1, "state": "AVAILABLE", "error": ""}]
        metadata = client.metadata()
        assert metadata["version"] == 1 and set(metadata["signature_def"]) == {"serving_default", "preprocess"}
        serving = metadata["signature_def"]["serving_default"]
        assert serving["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
        assert set(serving["outputs"]) == {"probabilities", "classes", "predicted_class"}
        assert serving["method_name"] == "tensorflow/serving/predict"


BAD_REST = [  # (what, path, body or raw bytes, status, part of the message)
    ("malformed JSON", f"/v1/models/{MODEL}:predict", b'{"instances": [', 400, "JSON Parse error"),
    ("bad base64", f"/v1/models/{MODEL}:predict", {"instances": [{"b64": "%%%not base64"}]}, 400, "base64"),
    ("not an image", f"/v1/models/{MODEL}:predict", {"instances": [b64(b"hello, not a picture")]}, 400, "image"),
    (
        "wrong signature",
        f"/v1/models/{MODEL}:predict",
        {"signature_name": "classify_me", "instances": [b64(IMAGES[0])]},
        400,
        'signature name: "classify_me" not found',
    ),
    (
        "wrong input name",
        f"/v1/models/{MODEL}:predict",
        {"instances": [{"image": b64(IMAGES[0])}]},
        400,
        "does not have named input: image",
    ),
    ("neither instances nor inputs", f"/v1/models/{MODEL}:predict", {"examples": []}, 400, "exactly one of"),
    ("unknown model", "/v1/models/nope:predict", {"instances": [b64(IMAGES[0])]}, 404, "nope"),
    ("unknown version", f"/v1/models/{MODEL}/versions/7:predict", {"instances": [b64(IMAGES[0])]}, 404, "7"),
    (  # TF Serving: INVALID_ARGUMENT "Unrecognized servable version label" (server_core.cc)
        "unknown label",
        f"/v1/models/{MODEL}/labels/canary:predict",
        {"instances": [b64(IMAGES[0])]},
        400,
        "Unrecognized servable version label: canary",
    ),
    ("unknown model status", "/v1/models/nope", None, 404, "nope"),
    ("not an API path", "/v2/whatever", None, 404, "Malformed request"),
]


def test_malformed_rest_requests_get_the_right_error_and_the_server_keeps_serving(serve, base_path):
    server = serve([ModelSpec(MODEL, base_path)], max_body_bytes=20_000)
    expected = in_process(base_path / "1", IMAGES[:1])
    good = {"instances": [b64(IMAGES[0])]}
    for what, path, body, code, message in BAD_REST:
        method = "GET" if body is None else "POST"
        status, answer = rest(
            server.rest_port, method, path, **({"raw": body} if isinstance(body, bytes) else {"body": body})
        )
        assert (status, set(answer)) == (code, {"error"}), what
        assert message in answer["error"], (what, answer)
        status, answer = rest(server.rest_port, "POST", f"/v1/models/{MODEL}:predict", good)
        assert status == 200 and np.allclose(answer["predictions"][0]["probabilities"], expected[0], atol=1e-6), what

    too_big = {"instances": [b64(image_bytes(1, size=(200, 200)))]}
    status, answer = rest(server.rest_port, "POST", f"/v1/models/{MODEL}:predict", too_big)
    assert status == 413 and "exceeds the limit of 20000" in answer["error"]
    # the client reports the server's message, and does not retry a 4xx
    sleeps = []
    client = ServingClient(f"127.0.0.1:{server.rest_port}", MODEL, sleep=sleeps.append)
    with pytest.raises(UserError, match=r"HTTP 400 .*Unknown image file format"):
        client.predict([b"not an image"])
    assert sleeps == []
    assert np.allclose(client.predict(IMAGES[:1]).probabilities, expected, atol=1e-6)


def test_malformed_grpc_requests_get_tf_servings_status_codes(serve, base_path):
    server = serve([ModelSpec(MODEL, base_path)])
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict

    def request(images, name=MODEL, version=None, label=None, signature="", input_name="image_bytes"):
        req = predict_pb2.PredictRequest()
        req.model_spec.name, req.model_spec.signature_name = name, signature
        if version is not None:
            req.model_spec.version.value = version
        if label:
            req.model_spec.version_label = label
        req.inputs[input_name].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
        return req

    cases = [
        (request([b"not an image"]), grpc.StatusCode.INVALID_ARGUMENT, "image"),
        (request(IMAGES[:1], signature="nope"), grpc.StatusCode.FAILED_PRECONDITION, 'signature key "nope" not found'),
        (request(IMAGES[:1], input_name="image"), grpc.StatusCode.INVALID_ARGUMENT, "['image']"),
        (request(IMAGES[:1], name="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
        (request(IMAGES[:1], version=3), grpc.StatusCode.NOT_FOUND, "3"),
        (request(IMAGES[:1], label="canary"), grpc.StatusCode.INVALID_ARGUMENT, "version label: canary"),
    ]
    expected = in_process(base_path / "1", IMAGES[:1])
    for req, code, message in cases:
        with pytest.raises(grpc.RpcError) as caught:
            predict(req, timeout=30)
        assert caught.value.code() == code and message in caught.value.details(), caught.value.details()
        answer = predict(request(IMAGES[:1]), timeout=30)
        assert np.allclose(tf.make_ndarray(answer.outputs["probabilities"]), expected, atol=1e-6)
        assert answer.model_spec.version.value == 1
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus
    with pytest.raises(grpc.RpcError) as caught:
        status(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "nope"}), timeout=30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    channel.close()


def test_models_config_policy_and_labels(serve, tmp_path, exported):
    root = tmp_path / "serving"
    for version in (1, 2, 3):
        (root / MODEL).mkdir(parents=True, exist_ok=True)
        push_version(exported[1 if version == 1 else 2], root / MODEL, version)
    # base_path as the official container sees it: the files are next to models.config here
    config = root / "models.config"
    config.write_text(
        "model_config_list {\n  config {\n    name: 'tiny'\n    base_path: '/models/tiny'\n"
        "    model_platform: 'tensorflow'\n    model_version_policy { specific { versions: 1 versions: 2 } }\n"
        "    version_labels { key: 'stable' value: 1 }\n    version_labels { key: 'canary' value: 2 }\n  }\n}\n"
    )
    specs = specs_from_config_text(config.read_text(), root)
    assert specs[0].base_path == root / MODEL and specs[0].versions == (1, 2)
    server = serve(specs)
    stable = ServingClient(f"127.0.0.1:{server.rest_port}", MODEL, label="stable")
    canary = ServingClient(f"127.0.0.1:{server.grpc_port}", MODEL, protocol="grpc", label="canary")
    assert np.allclose(stable.predict(IMAGES).probabilities, in_process(exported[1], IMAGES), atol=1e-6)
    assert np.allclose(canary.predict(IMAGES).probabilities, in_process(exported[2], IMAGES), atol=1e-6)
    assert [s["version"] for s in ServingClient(f"127.0.0.1:{server.rest_port}", MODEL).status()] == [2, 1]
    assert canary.status() == [{"version": 2, "state": "AVAILABLE", "error": ""}]
    # version 3 is on disk but not in the policy: not served
    with pytest.raises(UserError, match="HTTP 404"):
        ServingClient(f"127.0.0.1:{server.rest_port}", MODEL, version=3).predict(IMAGES[:1])


def test_request_log_records_sizes_channels_and_predicted_classes(serve, base_path, tmp_path):
    log = tmp_path / "requests.jsonl"
    server = serve([ModelSpec(MODEL, base_path)], request_log=log)
    gray = image_bytes(3, size=(30, 20))
    from PIL import Image

    Image.open(__import__("io").BytesIO(gray)).convert("L").save(tmp_path / "gray.png")
    images = [IMAGES[0], (tmp_path / "gray.png").read_bytes()]
    result = ServingClient(f"127.0.0.1:{server.grpc_port}", MODEL, protocol="grpc").predict(images)
    server.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 1
    assert lines[0]["model"] == MODEL and lines[0]["version"] == 1 and lines[0]["signature"] == "serving_default"
    assert lines[0]["images"] == [
        {"height": 10, "width": 12, "channels": 3},
        {"height": 20, "width": 30, "channels": 1},
    ]
    assert lines[0]["predicted"] == [CLASSES[int(i)] for i in np.argmax(result.probabilities, axis=1)]
