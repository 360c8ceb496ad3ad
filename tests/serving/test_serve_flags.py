"""`visionpipe serve` takes tensorflow_model_server's command line: every flag of the real
server, in its value syntax, and serve.sh's own command line runs it as if it were the binary."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.e2e.helpers import REPO
from tests.processes import Background, free_ports
from tests.serving.conftest import MODEL, image_bytes, in_process
from visionpipe.cli import _parser, main
from visionpipe.serving import tf_serving_config as tfs
from visionpipe.serving.model_store import ModelSpec
from visionpipe.serving.server_flags import FLAGS, without_effect

DEPLOY = Path(__file__).resolve().parents[2] / "serving" / "deploy"
IMAGE = image_bytes(3, size=(9, 9))


def serve_args(*flags: str):
    return _parser().parse_args(["serve", *flags])


def test_every_flag_of_the_real_server_is_taken_with_its_default():
    args = serve_args()
    assert len(FLAGS) == 48 and len({f.name for f in FLAGS}) == 48
    for flag in FLAGS:
        assert getattr(args, flag.name) == flag.default, flag.name
    assert without_effect(vars(args)) == []


@pytest.mark.parametrize(
    ("given", "value"),
    [("--enable_batching", True), ("--enable_batching=true", True), ("--enable_batching=True", True),
     ("--enable_batching=1", True), ("--enable_batching=FALSE", False), ("--enable_batching=0", False)],
)  # fmt: skip
def test_a_boolean_reads_as_tensorflows_flag_parser_reads_it(given, value):
    assert serve_args("--model_base_path=/m", given).enable_batching is value


def test_a_bad_value_or_an_unknown_flag_is_refused_with_its_name(capsys):
    for flags, said in (
        (["--enable_batching=yes"], "'yes' is not a boolean"),
        (["--port=85OO"], "--port: invalid int value: '85OO'"),
        (["--no_such_flag=1"], "unrecognized arguments: --no_such_flag=1"),
    ):
        with pytest.raises(SystemExit):
            serve_args("--model_base_path=/m", *flags)
        assert said in capsys.readouterr().err


def test_flags_the_development_server_does_not_act_on_are_named():
    args = serve_args("--model_base_path=/m", "--rest_api_num_threads=8", "--enable_model_warmup=false", "--port=9")
    assert without_effect(vars(args)) == ["--rest_api_num_threads=8", "--enable_model_warmup=False"]


def test_serialization_as_tensor_content_reaches_the_server_options():
    from visionpipe.cli_serve import _server_options

    assert _server_options(serve_args("--model_base_path=/m")).tensor_content is False
    packed = serve_args("--model_base_path=/m", "--enable_serialization_as_tensor_content=true")
    assert _server_options(packed).tensor_content is True and without_effect(vars(packed)) == []


def test_port_zero_needs_a_socket_path_as_the_real_server_says(tmp_path, capsys):
    assert main(["serve", f"--model_base_path={tmp_path}", "--port=0"]) == 2
    assert "--port=0 turns gRPC over TCP off: give --grpc_socket_path" in capsys.readouterr().err


def test_grpc_on_a_unix_socket_only(serve, base_path, tmp_path):
    socket_path = tmp_path / "tf.sock"
    server = serve([ModelSpec(MODEL, base_path)], rest_api_port=-1, grpc_port=-1, grpc_socket_path=socket_path)
    assert server.rest_port is None and server.grpc_port is None
    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([IMAGE], dtype=tf.string))
        answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    got = tf.make_ndarray(answer.outputs["probabilities"])
    assert np.allclose(got, in_process(base_path / "1", [IMAGE]), atol=1e-6)


@pytest.mark.slow
def test_serve_sh_runs_the_development_server_as_tensorflow_model_server(tmp_path, base_path):
    """serve.sh's binary mode with `visionpipe serve` standing in for the binary on PATH: the
    whole command line serve.sh writes (models.config, labels, batching) is taken."""
    destination = tmp_path / "destination"
    destination.mkdir()
    entry = tfs.ModelEntry(MODEL, str(base_path), versions=(1,), labels={"stable": 1})
    tfs.write_text_proto(destination / tfs.MODELS_CONFIG, tfs.model_server_config([entry]))
    tfs.write_text_proto(destination / tfs.BATCHING_CONFIG, tfs.batching_parameters(8, 1000, 1, 4, [8]))
    shim = tmp_path / "bin" / "tensorflow_model_server"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m visionpipe serve "$@"\n')
    shim.chmod(0o755)
    rest_port, grpc_port = free_ports(2)
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "SERVE_WITH": "binary",
           "REST_PORT": str(rest_port), "GRPC_PORT": str(grpc_port), "POLL_SECONDS": "1"}  # fmt: skip
    server = Background(["bash", str(DEPLOY / "serve.sh"), str(destination)], cwd=REPO, env=env)
    try:
        server.wait_for("development server", timeout=120)
        assert any("batching on" in line for line in server.output), server.output
        # base64 without its = padding, as TF Serving accepts it
        unpadded = base64.b64encode(IMAGE).decode().rstrip("=")
        assert unpadded != base64.b64encode(IMAGE).decode()
        body = json.dumps({"instances": [{"b64": unpadded}]}).encode()
        url = f"http://127.0.0.1:{rest_port}/v1/models/{MODEL}/labels/stable:predict"
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as response:
            got = json.loads(response.read())["predictions"][0]["probabilities"]
        assert np.allclose(got, in_process(base_path / "1", [IMAGE])[0], atol=1e-6)
    finally:
        assert server.stop() == 0, "".join(server.output)


@pytest.mark.parametrize(("intra_op", "inter_op", "expected"), [(0, 0, (1, 0)), (3, 2, (3, 2))])
def test_thread_flags_set_tensorflows_pools_and_intra_op_defaults_to_one_thread(intra_op, inter_op, expected):
    # TensorFlow takes its thread counts only before it starts, so each case runs in a new process.
    code = (
        "import tensorflow as tf; from visionpipe.cli_serve import set_threads; "
        f"set_threads({intra_op}, {inter_op}); "
        "print(tf.config.threading.get_intra_op_parallelism_threads(), "
        "tf.config.threading.get_inter_op_parallelism_threads())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert tuple(map(int, done.stdout.split()[-2:])) == expected
