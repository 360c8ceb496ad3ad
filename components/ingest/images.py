"""Checks one image file and normalises it to what every runtime decodes (JPEG or PNG).

Runs inside Beam workers, so it uses Pillow (fast, no TensorFlow import). A file that cannot be
used raises ``BadImage`` with a reason for the quarantine report.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings

from PIL import Image, ImageOps

# What the serving signature (tf.io.decode_image) reads directly, per format and mode; any other
# image is re-encoded as PNG so training and serving see the same pixels.
_KEPT_MODES = {"JPEG": {"L", "RGB"}, "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}}
_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "F": 1, "LA": 2, "P": 3, "RGB": 3, "YCbCr": 3,
             "LAB": 3, "HSV": 3, "RGBA": 4, "CMYK": 4, "PA": 4}
_EXIF_ORIENTATION = 0x0112


class BadImage(Exception):
    """The file is not a usable image; the message is the quarantine reason."""


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    data: bytes  # JPEG or PNG bytes to store
    sha256: str  # of the original file content (duplicates are found on what the user has)
    format: str  # original format, e.g. JPEG, PNG, BMP
    mode: str  # original Pillow mode, e.g. L, RGB, CMYK
    height: int
    width: int
    channels: int  # of the original
    converted: bool  # re-encoded to PNG (odd format/mode or EXIF rotation)


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    if not data:
        raise BadImage("empty file (0 bytes)")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt, mode = image.format or "unknown", image.mode
            if image.width * image.height > max_pixels:
                raise BadImage(f"image of {image.width}x{image.height} pixels exceeds data.max_pixels="
                               f"{max_pixels} (possible decompression bomb)")
            image.load()  # a full decode: catches truncated and corrupt files
    except BadImage:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise BadImage(f"decompression bomb: {err}") from None
    except Exception as err:  # Pillow raises many types for broken files
        raise BadImage(f"cannot decode image: {type(err).__name__}: {err}") from None
    rotated = image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
    converted = rotated or mode not in _KEPT_MODES.get(fmt, ())
    if converted:
        image = ImageOps.exif_transpose(image) if rotated else image
        data = _to_png(image)
    return CheckedImage(data=data, sha256=sha256, format=fmt, mode=mode, height=image.height,
                        width=image.width, channels=_CHANNELS.get(mode, 3), converted=converted)


def _to_png(image: Image.Image) -> bytes:
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
        has_alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
