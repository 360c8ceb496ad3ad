"""Versions and labels changing under a running server: a version pushed while clients send
requests is loaded, swapped in atomically and no request fails; warmup requests are replayed
at load and a version whose warmup fails is not served; a rewritten models.config moves labels."""

from __future__ import annotations

import os
import shutil
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


def test_versions_replay_their_warmup_requests_and_a_failing_one_is_not_served_until_fixed(
    base_path, exported, tmp_path
):
    from visionpipe.serving.model_store import ModelStore
    from visionpipe.serving.warmup import write_warmup

    write_warmup(base_path / "1", MODEL, IMAGES)
    store = ModelStore([ModelSpec(MODEL, base_path)])
    assert store.poll() == [f"{MODEL} version 1 loaded (3 warmup requests replayed)"]
    broken = tmp_path / "broken"
    shutil.copytree(exported[2], broken)
    write_warmup(broken, MODEL, [b"not an image"])
    push_version(broken, base_path, 2)
    (change,) = store.poll()
    assert change.startswith(f"{MODEL} version 2 failed to load") and "Unknown image file format" in change
    assert store.resolve(MODEL).version == 1  # the last good version keeps serving
    (v2, v1) = store.states(MODEL)
    assert v2[:2] == (2, "END") and "Unknown image file format" in v2[2] and v1 == (1, "AVAILABLE", "")
    assert store.poll() == []  # not retried while its folder is unchanged
    write_warmup(base_path / "2", MODEL, IMAGES)  # fixed in place: loaded on the next poll
    assert store.poll() == [f"{MODEL} version 2 loaded (3 warmup requests replayed)", f"{MODEL} version 1 unloaded"]
    assert store.resolve(MODEL).version == 2 and store.states(MODEL)[0] == (2, "AVAILABLE", "")


def test_a_rewritten_models_config_moves_labels_while_serving(serve, tmp_path, exported):
    from visionpipe.serving.model_store import ConfigFile

    base = tmp_path / "serving" / MODEL
    base.mkdir(parents=True)
    for version in (1, 2):
        push_version(exported[version], base, version)
    config = tmp_path / "serving" / "models.config"

    def write(stable: int) -> None:
        text = (
            f"model_config_list {{ config {{ name: '{MODEL}' base_path: '{base}' model_platform: 'tensorflow' "
            "model_version_policy { all {} } "
            f"version_labels {{ key: 'stable' value: {stable} }} }} }}"
        )
        tmp = config.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, config)  # as promote rewrites it: never half a file

    write(1)
    watched = ConfigFile(config)
    server = serve(watched.specs_if_changed(), model_config_file_poll_wait_seconds=0.1, config_file=watched)
    stable = ServingClient(f"127.0.0.1:{server.grpc_port}", MODEL, protocol="grpc", label="stable")
    expected = {v: in_process(exported[v], IMAGES) for v in (1, 2)}
    assert np.allclose(stable.predict(IMAGES).probabilities, expected[1], atol=1e-6)
    write(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not np.allclose(stable.predict(IMAGES).probabilities, expected[2], atol=1e-6):
        time.sleep(0.05)
    assert np.allclose(stable.predict(IMAGES).probabilities, expected[2], atol=1e-6)
