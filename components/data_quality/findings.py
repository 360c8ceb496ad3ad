"""The findings of the data_quality stage as records, and the files that hold them: ``findings.json``
(every finding, the counts, what was checked), ``findings.csv`` (one finding a row) and PNG
thumbnails of the images the run report shows.

Every finding names the image by its source path (where the user has it), its split and its
position among the split's records; pairs name both images.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from visionpipe.pipeline.artifacts import DROP, DataQuality

# The CSV's columns, in order (a finding lacks the ones its kind does not have: left empty).
# ``action`` and ``new_label`` make the file a curation file as it is (data.exclude): every row
# starts as drop (of the image in ``path``: for a pair, the copy in the earlier split); edit a row
# to keep, or to relabel with the label in ``new_label`` (a label issue's suggestion to start).
COLUMNS = (
    "kind", "rank", "split", "path", "label", "suggested_label", "score", "checked_by",
    "other_split", "other_path", "other_label", "pixel_correlation", "cosine", "hash_distance", "action",
    "new_label",
)  # fmt: skip
THUMBNAIL_PIXELS = 96  # the longer side of a report thumbnail


def counts(findings: list[dict[str, Any]]) -> dict[str, int]:
    return {kind: sum(f["kind"] == kind for f in findings) for kind in DataQuality.KINDS}


def write(out: Path, findings: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """``findings.json`` ({"summary", "findings"}) and ``findings.csv`` in the artifact ``out``."""
    (out / DataQuality.FINDINGS_JSON).write_text(json.dumps({"summary": summary, "findings": findings}, indent=2))
    with (out / DataQuality.FINDINGS_CSV).open("w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({"action": DROP, "new_label": f.get("suggested_label", ""), **f} for f in findings)


def thumbnail_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}.png"


def write_thumbnails(examples_dir: Path, out: Path, wanted: dict[str, set[int]]) -> None:
    """A PNG thumbnail of each wanted image (split -> record positions), from the ingested bytes
    (one read of those splits' records; only the wanted images are decoded)."""
    # Here, not at the top: the run report imports this module and must not load TensorFlow.
    from visionpipe.data import record_format
    from visionpipe.data.records import records

    folder = out / DataQuality.THUMBNAILS
    folder.mkdir(exist_ok=True)
    for split, indices in wanted.items():
        if not indices:
            continue
        last = max(indices)
        for position, record in enumerate(records(examples_dir, split).as_numpy_iterator()):
            if position in indices:
                image = Image.open(io.BytesIO(record[record_format.ENCODED])).convert("RGB")
                image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
                image.save(folder / thumbnail_name(split, position))
            if position >= last:
                break
