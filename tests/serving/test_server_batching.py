"""Server-side batching: concurrent requests run as one padded batch, with the same results
as unbatched calls; a bad request in a batch fails alone; the parameters file is checked."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.serving.conftest import MODEL, image_bytes, in_process
from visionpipe.pipeline.errors import UserError
from visionpipe.serving.batching import BatchingOptions
from visionpipe.serving.client import ServingClient
from visionpipe.serving.model_store import ModelSpec

PARAMETERS = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 200000 }
max_enqueued_batches { value: 4 }
num_batch_threads { value: 1 }
allowed_batch_sizes: 2
allowed_batch_sizes: 4
allowed_batch_sizes: 8
"""


def concurrently(count: int, call) -> list:
    """call(i) from ``count`` threads released together; the results (or exceptions) in order."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i):
        barrier.wait(timeout=30)
        try:
            results[i] = call(i)
        except Exception as err:
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_requests_are_batched_with_identical_results(serve, base_path):
    options = BatchingOptions.parse(PARAMETERS)
    assert (options.max_batch_size, options.batch_timeout_micros, options.allowed_batch_sizes) == (8, 200000, (2, 4, 8))
    server = serve([ModelSpec(MODEL, base_path)], batching=options)
    images = [image_bytes(i, size=(9 + i, 11)) for i in range(6)]
    expected = in_process(base_path / "1", images)
    protocols = [("rest", server.rest_port), ("grpc", server.grpc_port)]

    def one(i):
        protocol, port = protocols[i % 2]
        return ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol).predict([images[i]]).probabilities

    results = concurrently(len(images), one)
    for i, probabilities in enumerate(results):
        assert np.allclose(probabilities, expected[i : i + 1], atol=1e-6), results[i]
    stats = server.batcher.stats()
    assert stats["requests"] == 6 and stats["rows"] == 6
    assert stats["batches"] < 6 and max(stats["batch_sizes"]) >= 2, stats  # several requests per model call

    # 3 rows are padded to the allowed size 4; the padding's outputs are dropped
    three = ServingClient(f"127.0.0.1:{server.rest_port}", MODEL).predict(images[:3]).probabilities
    assert np.allclose(three, expected[:3], atol=1e-6)
    assert server.batcher.stats()["padded_rows"] >= stats["padded_rows"] + 1

    with pytest.raises(UserError, match="Task size 9 is larger than maximum input batch size 8"):
        ServingClient(f"127.0.0.1:{server.rest_port}", MODEL).predict(images + images[:3])


def test_a_bad_image_fails_only_its_own_request_in_a_batch(serve, base_path):
    server = serve([ModelSpec(MODEL, base_path)], batching=BatchingOptions.parse(PARAMETERS))
    images = [image_bytes(i) for i in range(4)]
    images[2] = b"no image at all"
    client = ServingClient(f"127.0.0.1:{server.rest_port}", MODEL)
    results = concurrently(4, lambda i: client.predict([images[i]]).probabilities)
    assert isinstance(results[2], UserError) and "Unknown image file format" in str(results[2])
    for i in (0, 1, 3):
        assert np.allclose(results[i], in_process(base_path / "1", [images[i]]), atol=1e-6)
    assert server.batcher.stats()["split_reruns"] >= 2  # the failed batch was rerun request by request


def test_batching_parameters_are_checked_like_tf_serving():
    with pytest.raises(ValueError, match="max_batch_sise"):
        BatchingOptions.parse("max_batch_sise { value: 8 }")
    with pytest.raises(ValueError, match=r"must end at max_batch_size \(8\)"):
        BatchingOptions.parse("max_batch_size { value: 8 }\nallowed_batch_sizes: 4")
    with pytest.raises(ValueError, match="strictly increasing"):
        BatchingOptions.parse("max_batch_size { value: 8 }\nallowed_batch_sizes: [4, 2, 8]")
    defaults = BatchingOptions.parse("")
    assert (defaults.max_batch_size, defaults.batch_timeout_micros, defaults.max_enqueued_batches) == (1000, 0, 10)


def test_stopping_the_server_lets_requests_in_flight_finish(serve, base_path):
    """A request waiting for its batch when the server is stopped still gets its answer."""
    slow = BatchingOptions.parse("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 1000000 }")
    server = serve([ModelSpec(MODEL, base_path)], batching=slow)
    images = [image_bytes(0)]
    results = {}

    def send(protocol, port):
        client = ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol, retries=0)
        try:
            results[protocol] = client.predict(images).probabilities
        except Exception as err:
            results[protocol] = err

    threads = [
        threading.Thread(target=send, args=("rest", server.rest_port), daemon=True),
        threading.Thread(target=send, args=("grpc", server.grpc_port), daemon=True),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(server.batcher._queue) < 2:  # both wait for their batch
        time.sleep(0.01)
    server.stop()
    for thread in threads:
        thread.join(timeout=30)
    expected = in_process(base_path / "1", images)
    for protocol in ("rest", "grpc"):
        assert np.allclose(results[protocol], expected, atol=1e-6), results[protocol]
