"""TFLite metadata (labels, input normalisation, tensor descriptions) written with the official
tflite-support MetadataWriter, so Android's and iOS's Task Library ``ImageClassifier`` load
the file without extra code.

tflite-support 0.4.4 needs protobuf<4, which cannot share visionpipe's environment, so it runs
``tflite_support_script.py`` with the Python of its own small virtualenv, which ``make``
creates at ``<project>/.venv-tflite-support`` (``export.metadata_python``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from visionpipe.pipeline.errors import UserError

SCRIPT = Path(__file__).with_name("tflite_support_script.py")
PROJECT = Path(__file__).resolve().parents[2]  # the source tree of an editable install


def metadata_python(setting: str) -> Path | None:
    """The Python with tflite-support: ``export.metadata_python``, or for ``auto`` the project's
    own virtualenv when it exists; None = no metadata."""
    if setting == "off":
        return None
    if setting != "auto":
        if not Path(setting).is_file():
            raise UserError(f"export.metadata_python {setting!r} does not exist; use auto, off or a python path")
        return Path(setting)
    candidate = PROJECT / ".venv-tflite-support" / "bin" / "python"
    return candidate if candidate.is_file() else None


def run_script(python: Path, *args: str) -> str:
    done = subprocess.run([str(python), str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise UserError(f"tflite-support {args[0]} failed: {lines[-1] if lines else 'no output'}")
    return done.stdout


def embed(python: Path, model: Path, labels: Path, thresholds: Path | None = None) -> None:
    """Metadata into ``model`` in place: uint8 files take raw pixels (mean 0, std 1), float
    files pixels / 255 (mean 0, std 255). ``thresholds`` (a multi-label model's file): the
    metadata says the output is multi-label and packs the thresholds beside the labels."""
    from ai_edge_litert.interpreter import Interpreter

    uint8 = Interpreter(model_path=str(model)).get_input_details()[0]["dtype"].__name__ == "uint8"
    extra = [str(thresholds)] if thresholds is not None else []
    run_script(python, "write", str(model), str(labels), "0", "1" if uint8 else "255", *extra)


def show(python: Path, model: Path) -> dict:
    return json.loads(run_script(python, "show", str(model)))


def classify(python: Path, model: Path, images: list[Path]) -> list[dict]:
    return json.loads(run_script(python, "classify", str(model), *map(str, images)))


def task_library_verdict(python: Path, model: Path, probe: Path) -> str:
    """ "yes" when the Task Library's ImageClassifier (tflite-support 0.4.4, what Android and iOS
    apps use) runs ``model`` on the RGB image ``probe``, else "no: " and its error."""
    answer = json.loads(run_script(python, "runs", str(model), str(probe)))
    return "yes" if answer["runs"] else f"no: {answer['why']}"
