"""TF Serving warmup requests: ``assets.extra/tf_serving_warmup_requests`` in a version folder.

TF Serving replays these records when it loads a version, before it marks the version
available, so the first user request does not pay for graph tracing and memory allocation.
The file is a TFRecord of ``PredictionLog`` protos whose ``predict_log.request`` is a
``PredictRequest`` for the ``serving_default`` signature. The images are real ones from the
val split (else the evaluation split), as the ingest stored them: the bytes a client sends.
"""

from __future__ import annotations

from pathlib import Path

from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from visionpipe.pipeline.artifacts import Examples
from visionpipe.serving.signature import IMAGE_INPUT, SIGNATURE
from visionpipe.serving.tf_serving_config import MAX_WARMUP_RECORDS

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_path(version_dir: Path) -> Path:
    return version_dir / WARMUP_DIR / WARMUP_FILE


def warmup_split(examples: Examples) -> str:
    """The split warmup images come from: val, else the evaluation split."""
    split = "val" if examples.split_counts["val"] else examples.evaluation_split
    if split is None:
        raise ValueError("the examples have neither a val nor a test split to take warmup images from")
    return split


def warmup_images(examples: Examples, count: int) -> list[bytes]:
    """Up to ``count`` encoded images of the warmup split, in record order."""
    from visionpipe.data.records import encoded_images

    images: list[bytes] = []
    multi_hot = len(examples.classes) if examples.multi_label else 0
    batches = encoded_images(examples.path, warmup_split(examples), batch_size=min(count, 256), multi_hot=multi_hot)
    for batch, _ in batches:
        images.extend(batch.numpy().tolist())
        if len(images) >= count:
            break
    return images[:count]


def prediction_log(model_name: str, image: bytes) -> prediction_log_pb2.PredictionLog:
    """One warmup record: a batch-1 Predict request, as a client would send it."""
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = SIGNATURE
    request.inputs[IMAGE_INPUT].CopyFrom(tf.make_tensor_proto([image], dtype=tf.string))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def write_warmup(version_dir: Path, model_name: str, images: list[bytes]) -> Path:
    """Writes one record per image (at most MAX_WARMUP_RECORDS) and returns the file's path."""
    import tensorflow as tf

    if not images:
        raise ValueError("no images to write warmup requests with")
    if len(images) > MAX_WARMUP_RECORDS:
        raise ValueError(f"{len(images)} warmup records; TF Serving reads at most {MAX_WARMUP_RECORDS}")
    path = warmup_path(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image in images:
            writer.write(prediction_log(model_name, image).SerializeToString())
    return path


def read_warmup(path: Path) -> list[prediction_log_pb2.PredictionLog]:
    """Every record parsed as a PredictionLog; raises on a corrupt file or record."""
    import tensorflow as tf

    logs = []
    for i, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(record)
        except Exception as err:  # protobuf's DecodeError: the record is not a PredictionLog
            raise ValueError(f"warmup record {i} is not a PredictionLog: {err}") from None
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"warmup record {i} holds a {log.WhichOneof('log_type')}, not a predict_log")
        logs.append(log)
    return logs
