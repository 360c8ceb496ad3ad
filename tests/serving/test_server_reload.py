"""A new version pushed while clients send requests: it is loaded, swapped in atomically, and no
request fails; responses switch to it and never back."""

from __future__ import annotations

import threading
import time

import numpy as np

from tests.serving.conftest import MODEL, image_bytes, in_process, push_version
from visionpipe.serving.client import ServingClient
from visionpipe.serving.model_store import ModelSpec

IMAGES = [image_bytes(i) for i in range(3)]


def test_pushing_a_version_under_load_drops_no_request(serve, base_path, exported):
    server = serve([ModelSpec(MODEL, base_path)], file_system_poll_wait_seconds=0.1)
    expected = {v: in_process(exported[v], IMAGES) for v in (1, 2)}
    assert not np.allclose(expected[1], expected[2], atol=1e-3)  # the versions are distinguishable
    stop, failures = threading.Event(), []
    seen: dict[int, list[int]] = {}

    def send(index: int, protocol: str, port: int) -> None:
        client = ServingClient(f"127.0.0.1:{port}", MODEL, protocol=protocol, retries=0, timeout=30)
        seen[index] = []
        while not stop.is_set():
            try:
                probabilities = client.predict(IMAGES).probabilities
            except Exception as err:  # every failure counts: retries are off
                failures.append(f"{protocol}: {err}")
                continue
            match = [v for v in (1, 2) if np.allclose(probabilities, expected[v], atol=1e-6)]
            seen[index].append(match[0] if match else -1)

    threads = [
        threading.Thread(target=send, args=(i, protocol, port), daemon=True)
        for i, (protocol, port) in enumerate([("rest", server.rest_port), ("grpc", server.grpc_port)] * 2)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(len(seen.get(i, [])) >= 5 for i in range(len(threads))):
        time.sleep(0.05)
    push_version(exported[2], base_path, 2)
    while time.monotonic() < deadline and not all(seen[i][-3:] == [2, 2, 2] for i in range(len(threads))):
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    for answers in seen.values():
        assert answers[:5] == [1] * 5 and answers[-3:] == [2, 2, 2]
        switch = answers.index(2)
        assert set(answers[:switch]) == {1} and set(answers[switch:]) == {2}, answers  # once, never back
    client = ServingClient(f"127.0.0.1:{server.rest_port}", MODEL)
    assert client.status() == [
        {"version": 2, "state": "AVAILABLE", "error": ""},
        {"version": 1, "state": "END", "error": ""},
    ]
