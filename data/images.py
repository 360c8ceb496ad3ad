"""Checks one image file and normalises it to what every runtime decodes the same way.

Runs inside Beam workers, so it uses Pillow (fast, no TensorFlow import). Plain 8-bit gray or
RGB JPEG/PNG files are kept byte for byte. Anything else that decodes (BMP, GIF, WebP,
RGBA/palette, CMYK, 16-bit, EXIF-rotated) is converted to the configured channel count and
upright orientation and stored as PNG, so training sees what the serving signature sees.
A file that cannot be used raises ``BadImage`` whose message is the quarantine reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import warnings

import numpy as np
from PIL import Image, ImageOps

from visionpipe.data import image_stats, record_format

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "WEBP")
_KEPT_MODES = ("L", "RGB")  # decoded identically by Pillow and tf.io.decode_image
CHANNELS_OF_MODE = {
    "1": 1,
    "L": 1,
    "I": 1,
    "I;16": 1,
    "I;16B": 1,
    "I;16L": 1,
    "F": 1,
    "LA": 2,
    "La": 2,
    "P": 3,
    "PA": 4,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
    "RGBA": 4,
    "RGBa": 4,
    "CMYK": 4,
}
_EXIF_ORIENTATION = 0x0112


class BadImage(Exception):
    """The file is not a usable image; the message is the quarantine reason."""


@dataclasses.dataclass(frozen=True)
class CheckedImage:
    data: bytes  # JPEG or PNG bytes to store
    sha256: str  # of the original bytes
    format: str  # original format, e.g. JPEG, PNG, BMP
    mode: str  # original Pillow mode, e.g. L, RGB, CMYK, I;16
    height: int  # upright, as stored
    width: int
    channels: int  # of the original
    converted: bool
    pixels: tuple | None = None  # image_stats.pixel_moments in the model's mode, when asked for

    def record(self, class_name: str, source: str, label: int = -1) -> record_format.Record:
        """The ingested record of this image (label -1: the id is appended once classes are known)."""
        return record_format.Record(
            encoded=self.data,
            label=label,
            class_name=class_name,
            source=source,
            sha256=self.sha256,
            format=self.format,
            mode=self.mode,
            height=self.height,
            width=self.width,
            channels=self.channels,
            converted=self.converted,
        )


def check_image(data: bytes, max_pixels: int, channels: int, pixel_sample: float = 0.0) -> CheckedImage:
    """``pixel_sample``: the fraction of images (chosen by content hash) whose pixel moments
    are measured for the normalisation statistics."""
    if not data:
        raise BadImage("empty file (0 bytes)")
    sha256 = hashlib.sha256(data).hexdigest()
    image = _open(data, max_pixels)
    fmt, mode = image.format or "unknown", image.mode
    # Parsing EXIF costs a third of a small image's decode; most files have none.
    rotated = "exif" in image.info and image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
    converted = rotated or fmt not in ("JPEG", "PNG") or mode not in _KEPT_MODES
    target_mode = "L" if channels == 1 else "RGB"
    if converted:
        image = _to_mode(ImageOps.exif_transpose(image) if rotated else image, target_mode)
        data = _png(image)
    sampled = image_stats.in_pixel_sample(sha256, pixel_sample)
    pixels = image_stats.pixel_moments(image.convert(target_mode)) if sampled else None
    return CheckedImage(
        data=data,
        sha256=sha256,
        format=fmt,
        mode=mode,
        height=image.height,
        width=image.width,
        channels=CHANNELS_OF_MODE.get(mode, 3),
        converted=converted,
        pixels=pixels,
    )


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Fully decodes the image (catching truncated and corrupt files) within the pixel budget."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in SUPPORTED_FORMATS:
                raise BadImage(
                    f"unsupported image format {image.format}; supported: "
                    f"{', '.join(SUPPORTED_FORMATS)} (convert it, e.g. to PNG)"
                )
            if image.width * image.height > max_pixels:
                raise BadImage(
                    f"image of {image.width}x{image.height} pixels exceeds data.max_pixels="
                    f"{max_pixels} (possible decompression bomb; raise data.max_pixels if real)"
                )
            image.load()
    except BadImage:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise BadImage(f"decompression bomb: {err}") from None
    except Exception as err:  # Pillow raises many types for broken files
        # Pillow names an in-memory file by its object address ("<_io.BytesIO object at 0x...>"),
        # which would make the same file's reason differ from run to run.
        detail = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(err)) or type(err).__name__
        raise BadImage(
            f"cannot decode image ({type(err).__name__}: {detail}); the file is corrupt, truncated or not an image"
        ) from None
    return image


def _to_mode(image: Image.Image, mode: str) -> Image.Image:
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # Pillow clips 16-bit values to 255 when converting to L; scale to 8 bits instead.
        scale = 65535.0 if image.mode != "F" else 1.0
        pixels = np.asarray(image, np.float64) / scale * 255.0
        image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), mode="L")
    # Alpha is dropped, not composited: tf.io.decode_image does the same to the bytes a
    # serving client sends, so training and serving agree.
    return image.convert(mode)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
