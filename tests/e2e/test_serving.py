"""Serving through the real CLI: run the pipeline on a tiny dataset, start `visionpipe serve` on
the pushed base path, and check that `visionpipe predict --server` over REST and gRPC prints
what `visionpipe predict --model` prints in process; then `visionpipe monitor` reads the
server's request log against the run's statistics."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import make_folder, tiny_config_yaml
from tests.e2e.helpers import REPO, visionpipe
from tests.processes import Background, free_ports

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serving")
    data = make_folder(tmp / "images", per_class=9)
    config = tmp / "config.yaml"
    # The gate must bless this model (one test image a class): the tiny config's epochs give it
    # a margin (tests/conftest.py).
    config.write_text(tiny_config_yaml(tmp / "runs", data))
    run = visionpipe("run", "--config", str(config), timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    base = tmp / "runs" / "serving" / "visionpipe"
    assert (base / "1" / "saved_model.pb").is_file()
    return tmp, config, data, base


def Server(*args: str) -> Background:
    """`visionpipe serve` with these flags, in the background."""
    return Background([sys.executable, "-m", "visionpipe", "serve", *args], cwd=REPO)


def test_predict_through_the_server_equals_in_process(pushed):
    tmp, config, data, base = pushed
    images = [str(p) for p in sorted(data.rglob("img_00[0-3].*"))]
    local = visionpipe("predict", "--model", str(base), "--json", *images)
    assert local.returncode == 0, local.stderr
    expected = json.loads(local.stdout)

    rest_port, grpc_port = free_ports(2)
    log = tmp / "requests.jsonl"
    server = Server(
        "--model_base_path", str(base), "--model_name", "visionpipe", "--rest_api_port", str(rest_port),
        "--port", str(grpc_port), "--request_log", str(log),
    )  # fmt: skip
    try:
        server.wait_for("development server")
        assert any("model visionpipe: versions [1]" in line for line in server.output), server.output
        for protocol, port in (("rest", rest_port), ("grpc", grpc_port)):
            remote = visionpipe(
                "predict", "--server", f"127.0.0.1:{port}", "--model-name", "visionpipe", "--protocol", protocol,
                "--json", *images,
            )  # fmt: skip
            assert remote.returncode == 0, remote.stderr
            answer = json.loads(remote.stdout)
            assert [r["image"] for r in answer] == [r["image"] for r in expected]
            for got, want in zip(answer, expected, strict=True):
                assert [t["class"] for t in got["top_k"]] == [t["class"] for t in want["top_k"]], protocol
                assert [t["probability"] for t in got["top_k"]] == pytest.approx(
                    [t["probability"] for t in want["top_k"]], abs=1e-6
                )
        wrong = visionpipe("predict", "--server", f"127.0.0.1:{rest_port}", "--model-name", "nope", images[0])
        assert wrong.returncode == 2 and "HTTP 404" in wrong.stderr and "nope" in wrong.stderr
    finally:
        assert server.stop() == 0, "".join(server.output)

    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(logged) == 2 and all(len(line["predicted"]) == len(images) for line in logged)
    monitor = visionpipe("monitor", "--config", str(config), "--request-log", str(log), "--min-images", "1")
    assert monitor.returncode in (0, 1), monitor.stderr
    assert f"2 logged requests, {2 * len(images)} images" in monitor.stdout
    assert "label_drift" in monitor.stdout and "size_drift" in monitor.stdout
    assert str(tmp / "runs" / "artifacts" / "validate") in monitor.stdout


def test_serve_the_files_push_writes_with_labels_and_batching(pushed):
    """`visionpipe serve` on push's models.config (base paths as the container sees them) and
    batching.config, as serving/deploy runs the official image on them."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    tmp, _, data, base = pushed
    config = base.parent / "models.config"
    batching = base.parent / "batching.config"
    assert config.is_file() and batching.is_file(), sorted(p.name for p in base.parent.iterdir())
    parsed = text_format.Parse(config.read_text(), model_server_config_pb2.ModelServerConfig())
    labels = dict(parsed.model_config_list.config[0].version_labels)
    images = [str(p) for p in sorted(data.rglob("img_00[4-5].*"))]
    expected = json.loads(visionpipe("predict", "--model", str(base / "1"), "--json", *images).stdout)

    rest_port, grpc_port = free_ports(2)
    server = Server(
        "--model_config_file", str(config), "--enable_batching", "--batching_parameters_file", str(batching),
        "--rest_api_port", str(rest_port), "--port", str(grpc_port), "--model_config_file_poll_wait_seconds", "1",
    )  # fmt: skip
    try:
        server.wait_for("development server")
        assert any("batching on" in line for line in server.output)
        addressed = ["--label", next(iter(labels))] if labels else ["--version", "1"]
        for protocol, port in (("rest", rest_port), ("grpc", grpc_port)):
            remote = visionpipe(
                "predict", "--server", f"127.0.0.1:{port}", "--model-name", "visionpipe", "--protocol", protocol,
                *addressed, "--json", *images,
            )  # fmt: skip
            assert remote.returncode == 0, remote.stderr
            for got, want in zip(json.loads(remote.stdout), expected, strict=True):
                assert [t["class"] for t in got["top_k"]] == [t["class"] for t in want["top_k"]]
                assert [t["probability"] for t in got["top_k"]] == pytest.approx(
                    [t["probability"] for t in want["top_k"]], abs=1e-6
                )
    finally:
        assert server.stop() == 0, "".join(server.output)
    server.wait_for("batching: 2 requests in")  # its counts when it stopped (warmup runs unbatched)
