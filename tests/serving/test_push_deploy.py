"""The deployment files start the official TF Serving image with the flags that match what
push writes: serve.sh is run against a stand-in ``docker`` that records its arguments."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from visionpipe.serving import tf_serving_config as tfs
from visionpipe.serving.infra_validation import SERVING_IMAGE

DEPLOY = Path(__file__).resolve().parents[2] / "serving" / "deploy"


def serve_sh(destination: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir, record = tmp_path / "bin", tmp_path / "docker-args"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    (bin_dir / "docker").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(DEPLOY / "serve.sh"), str(destination)], capture_output=True, text=True,
                          env=env, timeout=30)  # fmt: skip
    return done, record.read_text().splitlines() if record.exists() else []


def test_serve_sh_passes_the_pushed_files_to_the_official_image(tmp_path):
    destination = tmp_path / "serving"
    destination.mkdir()
    tfs.write_text_proto(destination / tfs.MODELS_CONFIG, tfs.model_server_config([tfs.ModelEntry("m", "/x/m")]))
    tfs.write_text_proto(destination / tfs.BATCHING_CONFIG, tfs.batching_parameters(8, 0, 1, 1, [8]))
    done, args = serve_sh(destination, tmp_path)
    assert done.returncode == 0, done.stderr
    assert args[:2] == ["run", "--rm"] and f"{destination}:{destination}:ro" in args and SERVING_IMAGE in args
    flags = args[args.index(SERVING_IMAGE) + 1 :]
    assert flags == [
        f"--model_config_file={destination}/{tfs.MODELS_CONFIG}",
        "--model_config_file_poll_wait_seconds=30",
        "--file_system_poll_wait_seconds=30",
        "--allow_version_labels_for_unavailable_models=true",
        "--enable_batching=true",
        f"--batching_parameters_file={destination}/{tfs.BATCHING_CONFIG}",
    ]


def test_serve_sh_without_a_push_says_so(tmp_path):
    done, args = serve_sh(tmp_path, tmp_path)
    assert done.returncode == 2 and "run the push stage first" in done.stderr and args == []


def test_compose_and_k8s_use_the_same_image_and_files():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]["tf-serving"]
    deployment = next(yaml.safe_load_all((DEPLOY / "k8s.yaml").read_text()))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for image, flags in ((compose["image"], compose["command"]), (container["image"], container["args"])):
        assert image == SERVING_IMAGE
        joined = " ".join(flags)
        assert f"/{tfs.MODELS_CONFIG}" in joined and "--batching_parameters_file=" in joined
        assert "--enable_batching=true" in flags and "--allow_version_labels_for_unavailable_models=true" in flags
        assert any(f.startswith("--model_config_file_poll_wait_seconds=") for f in flags)
