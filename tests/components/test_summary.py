"""The HTML validation summary: well-formed, self-contained, escaped, and readable at scale."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest

from visionpipe.components.validate.summary import render_html

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}


class Collector(HTMLParser):
    """Records every start tag with its attributes and checks that tags are balanced."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>, open: {self.stack}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Collector:
    parser = Collector()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


def split(classes: dict[str, int], buckets: dict[str, int], **extra) -> dict:
    count = sum(classes.values())
    stats = {
        "count": count,
        "classes": classes,
        "formats": {"JPEG": count - 2, "PNG": 2} if count else {},
        "modes": {"RGB": count - 3, "L": 2, "CMYK": 1} if count else {},
        "channels": {"3": count} if count else {},
        "converted": 3 if count else 0,
        "height": {"min": 20, "max": 1100, "mean": 48.5, "std": 12.5}
        if count
        else {"min": 0, "max": 0, "mean": 0.0, "std": 0.0},
        "width": {"min": 18, "max": 600, "mean": 44.0, "std": 9.75}
        if count
        else {"min": 0, "max": 0, "mean": 0.0, "std": 0.0},
        "size_buckets": buckets,
        "duplicates": 1 if count else 0,
    }
    stats.update(extra)
    return stats


def realistic_stats() -> dict[str, dict]:
    return {
        "train": split(
            {"cat": 412, "dog": 388, "<script>alert(1)</script>": 7, "price$5": 3},
            {"16x32": 500, "32x32": 300, "1024x512": 2, "4096x4096": 8},
            pixel_mean=[0.4851, 0.4562, 0.4063],
            pixel_std=[0.2290, 0.2240, 0.2250],
        ),
        "val": split({"cat": 51, "dog": 49, "price$5": 1}, {"16x32": 80, "32x32": 21}),
        "test": split({"cat": 52, "dog": 47, "<script>alert(1)</script>": 1}, {"32x16": 100}),
        "holdout": split({}, {}),
    }


def blocking_anomalies() -> list[dict]:
    files = [f"/data/cat/img_{i:05d}.jpg" for i in range(1234)]
    return [
        {
            "kind": "duplicate_across_splits",
            "severity": "block",
            "message": "Same content in train and test",
            "items": files,
        },
        {
            "kind": "small_class",
            "severity": "warn",
            "message": "Class has < 10 images",
            "items": ["<script>alert(1)</script>", "price$5"],
        },
    ]


def png_payloads(parser: Collector) -> list[bytes]:
    prefix = "data:image/png;base64,"
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 2
    assert all(attrs["src"].startswith(prefix) for attrs in images)
    return [base64.b64decode(attrs["src"][len(prefix) :], validate=True) for attrs in images]


@pytest.fixture(scope="module")
def blocked_page() -> str:
    return render_html(realistic_stats(), blocking_anomalies(), title="Run <42> & co")


def test_page_is_well_formed_with_two_embedded_pngs(blocked_page):
    parser = parse(blocked_page)
    assert blocked_page.startswith("<!DOCTYPE html>")
    for payload in png_payloads(parser):
        assert payload.startswith(PNG_SIGNATURE)
        assert len(payload) > 1000  # a real plot, not an empty stub
    # Self-contained: nothing is fetched from elsewhere.
    assert not any(tag in ("script", "link") for tag, _ in parser.tags)
    assert "http://" not in blocked_page and "https://" not in blocked_page


def test_size_heatmap_sums_buckets_over_splits(blocked_page):
    size_alt = [a["alt"] for t, a in parse(blocked_page).tags if t == "img"][1]
    # 16x32 is in train (500) and val (80); 4096x4096 lands in the open-ended last bucket.
    assert "16-31 x 32-63: 580" in size_alt
    assert "32-63 x 16-31: 100" in size_alt
    assert "1024-2047 x 512-1023: 2" in size_alt
    assert "4096+ x 4096+: 8" in size_alt


def test_split_tables_show_names_and_counts(blocked_page):
    text = " ".join(parse(blocked_page).text)
    for name in ("train", "val", "test", "holdout"):
        assert name in text
    assert "810" in text  # train images
    assert "JPEG 808, PNG 2" in text
    assert "RGB 807, L 2, CMYK 1" in text
    assert "20–1100 (mean 48.5, std 12.5)" in text
    # Per-class counts in split order: train, val, test, holdout.
    assert "<tr><th>cat</th><td>412</td><td>51</td><td>52</td><td>0</td></tr>" in blocked_page
    assert "<tr><th>dog</th><td>388</td><td>49</td><td>47</td><td>0</td></tr>" in blocked_page
    assert "<tr><th>price$5</th><td>3</td><td>1</td><td>0</td><td>0</td></tr>" in blocked_page


def test_user_strings_are_escaped(blocked_page):
    assert "<script>" not in blocked_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in blocked_page
    assert "<title>Run &lt;42&gt; &amp; co</title>" in blocked_page
    # The escaped class name reads back as the original text.
    assert "<script>alert(1)</script>" in " ".join(parse(blocked_page).text)


def test_verdict_blocked_and_long_item_lists_truncated(blocked_page):
    text = " ".join(parse(blocked_page).text)
    assert "BLOCKED: 1 blocking anomaly" in text
    assert "1 warning" in text
    assert "/data/cat/img_00049.jpg" in text
    assert "/data/cat/img_00050.jpg" not in text
    assert "... and 1184 more" in text
    assert blocked_page.count("<li>") == 50 + 2


def test_verdict_ok_without_blocking_anomalies():
    warn_only = [a for a in blocking_anomalies() if a["severity"] == "warn"]
    text = " ".join(parse(render_html(realistic_stats(), warn_only)).text)
    assert "OK" in text and "BLOCKED" not in text
    assert "1 warning" in text
    assert "... and" not in text
    clean = " ".join(parse(render_html(realistic_stats(), [])).text)
    assert "OK" in clean and "No anomalies" in clean


def test_pixel_stats_shown_for_train_only(blocked_page):
    text = " ".join(parse(blocked_page).text)
    assert "Pixel statistics" in text
    assert "0.4851" in text and "0.2250" in text
    no_pixels = {
        k: {kk: vv for kk, vv in v.items() if not kk.startswith("pixel_")} for k, v in realistic_stats().items()
    }
    assert "Pixel statistics" not in render_html(no_pixels, [])


def test_many_classes_render_every_class():
    classes = {f"class_{i:03d}": 5 + i for i in range(150)}
    stats = {
        "train": split(classes, {"32x32": sum(classes.values())}),
        "val": split({k: 1 for k in classes}, {"32x32": 150}),
        "test": split({k: 2 for k in list(classes)[:75]}, {"64x64": 150}),
    }
    page = render_html(stats, [])
    class_png, size_png = png_payloads(parse(page))
    assert class_png.startswith(PNG_SIGNATURE) and size_png.startswith(PNG_SIGNATURE)
    # The class plot grows with the class count instead of squeezing 150 labels together.
    height = int.from_bytes(class_png[20:24], "big")  # IHDR height
    assert height > 150 * 10
    assert "Counts per class (150 classes)" in page
    assert all(f"<th>class_{i:03d}</th>" in page for i in range(150))


def test_empty_splits_do_not_crash():
    stats = realistic_stats()
    page = render_html(stats, [])
    holdout = page.split("<h3>holdout</h3>")[1].split("</table>")[0]
    assert "<td>0</td>" in holdout and "—" in holdout
    all_empty = render_html({"train": split({}, {}), "val": split({}, {}), "test": split({}, {})}, [])
    for payload in png_payloads(parse(all_empty)):
        assert payload.startswith(PNG_SIGNATURE)
