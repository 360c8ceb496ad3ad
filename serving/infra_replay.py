"""The fresh-process half of infra validation: load a staged version as TF Serving would and
replay its warmup requests, then one REST body, through the serving signature.

Run as ``python -m visionpipe.serving.infra_replay VERSION_DIR MODEL_NAME``. A fresh process
is what a server has: nothing of the exporting process (Python objects, traced functions,
custom layers imported by training) can make a broken SavedModel look fine. It prints one
JSON line: ``{"ok": ..., "problem": ..., "records": ..., "classes": ...}``. ``infra_validation``
starts it with a timeout.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import numpy as np

from visionpipe.serving.signature import (
    CLASSES,
    IMAGE_INPUT,
    MULTI_LABEL_OUTPUT_DTYPES,
    OUTPUT_DTYPES,
    PREDICTED_CLASS,
    PREDICTED_LABELS,
    PROBABILITIES,
    SIGNATURE,
    THRESHOLDS,
)

REST_IMAGES = 3  # instances in the REST body: a batch, as clients send them
SUM_TOLERANCE = 1e-3


class ReplayProblem(Exception):
    """The version would not serve correctly; the message says what failed."""


def check_outputs(outputs: dict, batch: int, where: str) -> np.ndarray:
    """Checks the signature's outputs for a batch of ``batch`` images; returns the probabilities.
    A multi-label model (one that returns thresholds) has independent probabilities per label,
    and its predicted labels must be the ones at or above their thresholds."""
    multi_label = THRESHOLDS in outputs
    expected_dtypes = {**OUTPUT_DTYPES, **(MULTI_LABEL_OUTPUT_DTYPES if multi_label else {})}
    missing = sorted(set(expected_dtypes) - set(outputs))
    if missing:
        raise ReplayProblem(f"{where}: the signature returned no {', '.join(missing)} (got {sorted(outputs)})")
    for name, dtype in expected_dtypes.items():
        if outputs[name].dtype.name != dtype:
            raise ReplayProblem(f"{where}: output {name} is {outputs[name].dtype.name}, expected {dtype}")
    probabilities = outputs[PROBABILITIES].numpy()
    classes, predicted = outputs[CLASSES].numpy(), outputs[PREDICTED_CLASS].numpy()
    if probabilities.ndim != 2 or probabilities.shape[0] != batch:
        raise ReplayProblem(f"{where}: probabilities have shape {probabilities.shape}, expected [{batch}, classes]")
    if classes.shape != probabilities.shape or predicted.shape != (batch,):
        raise ReplayProblem(
            f"{where}: classes {classes.shape} / predicted_class {predicted.shape} do not match probabilities "
            f"{probabilities.shape}"
        )
    if multi_label:
        _check_labels(outputs, probabilities, classes, where)
    else:
        sums = probabilities.sum(axis=1)
        if not np.all(np.isfinite(probabilities)) or np.any(np.abs(sums - 1) > SUM_TOLERANCE):
            raise ReplayProblem(f"{where}: probabilities do not sum to 1 (sums {np.round(sums, 4).tolist()})")
    expected = classes[np.arange(batch), probabilities.argmax(axis=1)]
    if not np.array_equal(expected, predicted):
        raise ReplayProblem(f"{where}: predicted_class is not the class of the highest probability")
    return probabilities


def _check_labels(outputs: dict, probabilities: np.ndarray, classes: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(probabilities)) or probabilities.min() < 0 or probabilities.max() > 1:
        raise ReplayProblem(f"{where}: multi-label probabilities outside [0, 1]")
    thresholds, labels = outputs[THRESHOLDS].numpy(), outputs[PREDICTED_LABELS].numpy()
    if thresholds.shape != probabilities.shape or labels.shape != probabilities.shape:
        raise ReplayProblem(
            f"{where}: thresholds {thresholds.shape} / predicted_labels {labels.shape} do not match "
            f"probabilities {probabilities.shape}"
        )
    expected = np.where(probabilities >= thresholds, classes, b"")
    if not np.array_equal(expected, labels):
        raise ReplayProblem(f"{where}: predicted_labels are not the labels at or above their thresholds")


def replay(version_dir: Path, model_name: str) -> dict:
    """Loads ``version_dir``, replays its warmup records, then one REST body of their first
    images; returns the figures of the JSON line, or raises ReplayProblem."""
    started = time.time()
    signature = _load_signature(version_dir)
    records, first_images, first_probabilities = _replay_warmup(signature, version_dir, model_name)
    probabilities = _replay_rest_body(signature, first_images[:REST_IMAGES])
    if not np.allclose(probabilities, first_probabilities[: len(probabilities)], atol=1e-5):
        raise ReplayProblem("REST body: a batch gives other probabilities than the same images one at a time")
    return {
        "ok": True,
        "records": records,
        "classes": int(probabilities.shape[1]),
        "seconds": round(time.time() - started, 2),
    }


def _load_signature(version_dir: Path):
    """The serving signature of the SavedModel, checked to take one tf.string image input."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(version_dir))
    except Exception as err:
        raise ReplayProblem(f"the SavedModel does not load: {type(err).__name__}: {_first_line(err)}") from None
    if SIGNATURE not in loaded.signatures:
        raise ReplayProblem(f"no {SIGNATURE} signature (has {sorted(loaded.signatures)})")
    signature = loaded.signatures[SIGNATURE]
    inputs = signature.structured_input_signature[1]
    if set(inputs) != {IMAGE_INPUT} or inputs[IMAGE_INPUT].dtype != tf.string:
        raise ReplayProblem(f"{SIGNATURE} must take one tf.string input {IMAGE_INPUT}; it takes {inputs}")
    return signature


def _replay_warmup(signature, version_dir: Path, model_name: str) -> tuple[int, list[bytes], list[np.ndarray]]:
    """Every warmup record through the signature, as TF Serving replays them at load; returns the
    number of records and the first REST_IMAGES (or more) images with their probabilities."""
    import tensorflow as tf

    from visionpipe.serving.warmup import read_warmup, warmup_path

    try:
        logs = read_warmup(warmup_path(version_dir))
    except Exception as err:  # a corrupt TFRecord surfaces as DataLossError
        raise ReplayProblem(f"the warmup file does not parse: {_first_line(err)}") from None
    if not logs:
        raise ReplayProblem("the warmup file holds no records")
    first_images: list[bytes] = []
    first_probabilities: list[np.ndarray] = []
    for i, log in enumerate(logs):
        request = log.predict_log.request
        where = f"warmup record {i}"
        if request.model_spec.name != model_name or request.model_spec.signature_name != SIGNATURE:
            raise ReplayProblem(
                f"{where} asks for model {request.model_spec.name!r} signature "
                f"{request.model_spec.signature_name!r}, not {model_name!r} {SIGNATURE!r}"
            )
        if set(request.inputs) != {IMAGE_INPUT}:
            raise ReplayProblem(f"{where} has inputs {sorted(request.inputs)}, expected [{IMAGE_INPUT!r}]")
        images = tf.make_ndarray(request.inputs[IMAGE_INPUT])
        probabilities = _predict(signature, images, where)
        if len(first_images) < REST_IMAGES:
            first_images.extend(images.tolist())
            first_probabilities.extend(probabilities)
    return len(logs), first_images, first_probabilities


def _replay_rest_body(signature, images: list[bytes]) -> np.ndarray:
    """``images`` as one REST request body of ``{"b64": ...}`` instances, decoded by the
    development server's decoder (which decodes bodies as TF Serving does); returns their
    probabilities."""
    from visionpipe.serving.rest_api import decode_predict_request
    from visionpipe.serving.servable import ServingError

    body = json.dumps({"instances": [{"b64": base64.b64encode(b).decode()} for b in images]})
    try:
        rest_images = decode_predict_request(json.loads(body), [IMAGE_INPUT])[0][IMAGE_INPUT]
    except ServingError as err:
        raise ReplayProblem(f"REST body: {err}") from None
    return _predict(signature, rest_images, "REST body")


def _predict(signature, images, where: str) -> np.ndarray:
    """The signature's checked probabilities for a batch of encoded ``images``."""
    import tensorflow as tf

    try:
        outputs = signature(**{IMAGE_INPUT: tf.constant(images, tf.string)})
    except Exception as err:
        raise ReplayProblem(f"{where}: the signature failed: {type(err).__name__}: {_first_line(err)}") from None
    return check_outputs(outputs, len(images), where)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [""])[0][:300]


def main(argv: list[str]) -> int:
    version_dir, model_name = Path(argv[0]), argv[1]
    try:
        result = replay(version_dir, model_name)
    except ReplayProblem as problem:
        result = {"ok": False, "problem": str(problem)}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
