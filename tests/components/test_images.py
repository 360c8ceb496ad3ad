import io

import pytest
from PIL import Image

from visionpipe.data.images import BadImage, check_image


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def test_jpeg_is_kept_as_is():
    data = encode(Image.new("RGB", (30, 20), (10, 200, 30)), "JPEG")
    checked = check_image(data, max_pixels=10_000, channels=3)
    assert checked.data == data and not checked.converted
    assert (checked.format, checked.mode, checked.width, checked.height, checked.channels) == ("JPEG", "RGB", 30, 20, 3)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"this is not an image", "cannot decode"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason(data, reason):
    with pytest.raises(BadImage, match=reason):
        check_image(data, max_pixels=10_000, channels=3)


def test_truncated_png_is_rejected():
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    with pytest.raises(BadImage, match="cannot decode"):
        check_image(data[: len(data) // 2], max_pixels=10_000, channels=3)


def test_pixel_bomb_is_rejected():
    data = encode(Image.new("L", (200, 200)), "PNG")
    with pytest.raises(BadImage, match="max_pixels"):
        check_image(data, max_pixels=10_000, channels=3)


@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("RGB", "BMP"), ("P", "GIF")])
def test_odd_formats_are_converted_to_png(mode, fmt):
    data = encode(Image.new(mode, (16, 8)), fmt)
    checked = check_image(data, max_pixels=10_000, channels=3)
    assert checked.converted and checked.data.startswith(b"\x89PNG")
    assert checked.format == fmt and checked.mode == mode


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 10), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    checked = check_image(encode(image, "JPEG", exif=exif), max_pixels=10_000, channels=3)
    assert checked.converted and (checked.width, checked.height) == (10, 40)
