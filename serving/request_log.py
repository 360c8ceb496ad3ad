"""Request log: one JSON line per sampled prediction request, for ``visionpipe monitor``.

A line records when, which model version and signature, and per image its size and channel
count (read from the encoded header, without decoding pixels; channels counted as ingest
counts them) and the class the model predicted. ``visionpipe monitor`` compares these with
the training data's statistics. Writes are appended under a lock and flushed per line, so a
reader never sees half a line from this process.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from pathlib import Path

import numpy as np

# Channels counted as ingest counts them for the training statistics (a palette image is colour).
from visionpipe.data.images import CHANNELS_OF_MODE
from visionpipe.serving.signature import IMAGE_INPUT, PREDICTED_CLASS


def image_header(data: bytes) -> dict:
    """{height, width, channels} of encoded image bytes ({} if Pillow cannot read the header)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return {"height": image.height, "width": image.width, "channels": CHANNELS_OF_MODE.get(image.mode, 3)}
    except (UnidentifiedImageError, OSError, ValueError):
        return {}


class RequestLog:
    """Appends request statistics to ``path``; ``sample_rate`` of requests are logged."""

    def __init__(self, path: Path, sample_rate: float = 1.0, seed: int = 0):
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], not {sample_rate}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sample_rate = sample_rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")

    def record(
        self, model: str, version: int, signature: str, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]
    ) -> None:
        with self._lock:
            if self._random.random() >= self.sample_rate:
                return
        images = [image_header(bytes(b)) for b in np.ravel(inputs[IMAGE_INPUT])] if IMAGE_INPUT in inputs else []
        predicted = [_text(c) for c in np.ravel(outputs[PREDICTED_CLASS])] if PREDICTED_CLASS in outputs else []
        line = {
            "time": round(time.time(), 3),
            "model": model,
            "version": version,
            "signature": signature,
            "images": images,
            "predicted": predicted,
        }
        with self._lock:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read(path: Path, model: str | None = None, since: float | None = None) -> list[dict]:
    """The logged lines (optionally of one model, at or after a UNIX time); a torn last line
    (a server killed mid-write) is skipped."""
    lines = []
    with path.open(encoding="utf-8") as f:
        for raw in f:
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if (model is None or line.get("model") == model) and (since is None or line.get("time", 0) >= since):
                lines.append(line)
    return lines
