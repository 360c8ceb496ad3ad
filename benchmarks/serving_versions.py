"""Which TensorFlow Serving releases load visionpipe's SavedModel: each registered model, exported
as the export stage exports it (plain, and with the calibration temperature and mirror-image
averaging folded in; RGB and grayscale; every resize policy), is loaded and called in older
TensorFlow runtimes, and their probabilities are compared with this environment's.

TF Serving X.Y is built on TensorFlow X.Y's runtime (its WORKSPACE pins the commit), so a
SavedModel that TensorFlow X.Y loads and runs alike is expected to serve in
tensorflow/serving:X.Y. The TF Serving binary itself does not install here.

    python -m venv /tmp/tf2.19 && /tmp/tf2.19/bin/pip install 'tensorflow-cpu==2.19.*'
    python benchmarks/serving_versions.py --python /tmp/tf2.19/bin/python --python /tmp/tf2.20/bin/python
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Run by the older runtime: loads each SavedModel, calls serving_default, writes probabilities.
CHILD = """
import json, sys, numpy as np, tensorflow as tf
root, images = sys.argv[1], json.load(open(sys.argv[2]))
tensors = tf.constant([bytes.fromhex(h) for h in images])
out = {"tf": tf.__version__, "models": {}}
for name in json.load(open(root + "/names.json")):
    try:
        signature = tf.saved_model.load(root + "/" + name).signatures["serving_default"]
        out["models"][name] = signature(image_bytes=tensors)["probabilities"].numpy().tolist()
    except Exception as err:
        out["models"][name] = str(err).strip().splitlines()[-1][:300]
print(json.dumps(out))
"""

VARIANTS = (  # (model, channels, resize policy, calibration temperature and mirror averaging)
    ("small_cnn", 3, "stretch", False),
    ("small_cnn", 1, "pad", False),
    ("resnet9", 3, "crop", True),
    ("airbench", 3, "center_crop", False),
    ("mobilenet_v3_small", 3, "crop", True),
    ("efficientnet_v2_b0", 3, "crop", False),
    ("vit", 3, "stretch", False),
)


def test_images() -> list[bytes]:
    """JPEG and PNG, RGB and grayscale, of sizes other than the models'."""
    rng = np.random.default_rng(0)
    images = []
    for mode, fmt, size in [("RGB", "JPEG", (50, 37)), ("L", "PNG", (29, 41)), ("RGB", "PNG", (64, 64))]:
        pixels = rng.integers(0, 256, (size[1], size[0], 3), np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).convert(mode).save(out, format=fmt)
        images.append(out.getvalue())
    return images


def export_all(root: Path, images: list[bytes]) -> dict[str, np.ndarray]:
    """Every variant's SavedModel under ``root``; its probabilities here."""
    import keras
    import tensorflow as tf

    from visionpipe.components.export.saved_model import export_saved_model
    from visionpipe.models.classifier import build_classifier
    from visionpipe.models.config import ModelConfig
    from visionpipe.models.preprocessing import PreprocessingSpec
    from visionpipe.models.temperature import with_temperature
    from visionpipe.models.tta import flip_averaged
    from visionpipe.serving.served_signature import load_signature

    reference = {}
    for model_name, channels, policy, calibrated in VARIANTS:
        keras.utils.set_random_seed(0)
        crop = 0.875 if policy == "center_crop" else 1.0
        spec = PreprocessingSpec(32, 32, channels, policy, (0.5,) * channels, (0.25,) * channels, crop)
        model = build_classifier(spec, 5, ModelConfig(model_name))
        if calibrated:
            model = flip_averaged(with_temperature(model, 1.7))
        name = f"{model_name}_{channels}ch_{policy}{'_calibrated_flip' if calibrated else ''}"
        export_saved_model(model, spec, list("abcde"), root / name)
        reference[name] = load_signature(root / name)(image_bytes=tf.constant(images))["probabilities"].numpy()
    (root / "names.json").write_text(json.dumps(list(reference)))
    return reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", required=True, help="a Python with an older TensorFlow")
    args = parser.parse_args()
    import tensorflow as tf

    images = test_images()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reference = export_all(root, images)
        (root / "images.json").write_text(json.dumps([b.hex() for b in images]))
        print(f"exported by TensorFlow {tf.__version__}; {len(images)} images (JPEG/PNG, RGB/grayscale)")
        for python in args.python:
            done = subprocess.run([python, "-c", CHILD, str(root), str(root / "images.json")],
                                  capture_output=True, text=True, timeout=1800)  # fmt: skip
            if done.returncode != 0:
                print(f"{python}: failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            answer = json.loads(done.stdout.strip().splitlines()[-1])
            for name, got in answer["models"].items():
                verdict = (
                    f"loads, max |difference| {np.abs(np.array(got) - reference[name]).max():.1e}"
                    if isinstance(got, list)
                    else f"fails: {got}"
                )
                print(f"| TensorFlow {answer['tf']} | {name} | {verdict} |", flush=True)


if __name__ == "__main__":
    main()
