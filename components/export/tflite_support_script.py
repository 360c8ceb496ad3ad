"""Runs in its own virtualenv (``make`` creates ``.venv-tflite-support``): tflite-support 0.4.4
needs protobuf<4, which cannot share visionpipe's environment. No visionpipe imports here.

    python tflite_support_script.py write MODEL LABELS MEAN STD [THRESHOLDS]  # embeds metadata in place
    python tflite_support_script.py show MODEL                       # JSON: files and metadata
    python tflite_support_script.py classify MODEL IMAGE...          # JSON: Task Library top-1s
    python tflite_support_script.py runs MODEL IMAGE                 # JSON: whether it runs, why not
"""

import json
import sys
from collections.abc import Callable

MULTI_LABEL = (
    "Multi-label: an independent probability per label (a sigmoid, not a softmax); a label is present when its "
    "probability is at least its threshold in thresholds.json (a JSON list in labels.txt's order, fitted on val)."
)


def write(model: str, labels: str, mean: str, std: str, thresholds: str = "") -> None:
    """Metadata for the Task Library: normalisation and labels; with ``thresholds`` (a multi-label
    model's), descriptions that say so and the thresholds file packed beside labels.txt."""
    from tflite_support import metadata_schema_py_generated as schema
    from tflite_support.metadata_writers import image_classifier, metadata_info, writer_utils

    buffer = writer_utils.load_file(model)
    if not thresholds:
        writer = image_classifier.MetadataWriter.create_for_inference(
            buffer, input_norm_mean=[float(mean)], input_norm_std=[float(std)], label_file_paths=[labels]
        )
        writer_utils.save_file(writer.populate(), model)
        return
    image = metadata_info.InputImageTensorMd(
        name="image", description="Input image to be classified.", norm_mean=[float(mean)], norm_std=[float(std)],
        color_space_type=schema.ColorSpaceType.RGB, tensor_type=writer_utils.get_input_tensor_types(buffer)[0],
    )  # fmt: skip
    output = metadata_info.ClassificationTensorMd(
        name="probability", description=MULTI_LABEL, label_files=[metadata_info.LabelFileMd(labels)],
        tensor_type=writer_utils.get_output_tensor_types(buffer)[0],
    )  # fmt: skip
    output.associated_files.append(
        metadata_info.AssociatedFileMd(
            thresholds, "Each label's decision threshold.", schema.AssociatedFileType.DESCRIPTIONS
        )
    )
    general = metadata_info.GeneralMd(name="ImageClassifier", description=MULTI_LABEL)
    writer = image_classifier.MetadataWriter.create_from_metadata_info(buffer, general, image, output)
    writer_utils.save_file(writer.populate(), model)


def show(model: str) -> None:
    from tflite_support import metadata

    displayer = metadata.MetadataDisplayer.with_model_file(model)
    labels = displayer.get_associated_file_buffer("labels.txt").decode().split()
    print(json.dumps({"files": displayer.get_packed_associated_file_list(), "labels": labels,
                      "metadata": json.loads(displayer.get_metadata_json())}))  # fmt: skip


def classify(model: str, *images: str) -> None:
    from tflite_support.task import core, vision

    options = vision.ImageClassifierOptions(base_options=core.BaseOptions(file_name=model))
    classifier = vision.ImageClassifier.create_from_options(options)
    top = []
    for image in images:
        result = classifier.classify(vision.TensorImage.create_from_file(image))
        best = result.classifications[0].categories[0]
        top.append({"image": image, "label": best.category_name, "score": best.score})
    print(json.dumps(top))


def runs(model: str, image: str) -> None:
    """Whether the Task Library's ImageClassifier loads ``model`` and classifies ``image``; its
    own error where not (a grayscale input, an operator version newer than its runtime)."""
    from tflite_support.task import core, vision

    try:
        options = vision.ImageClassifierOptions(base_options=core.BaseOptions(file_name=model))
        vision.ImageClassifier.create_from_options(options).classify(vision.TensorImage.create_from_file(image))
    except Exception as err:  # whatever stops it stops the app: the answer is its message
        print(json.dumps({"runs": False, "why": str(err).strip().splitlines()[0]}))
        return
    print(json.dumps({"runs": True, "why": ""}))


if __name__ == "__main__":
    commands: dict[str, Callable[..., None]] = {"write": write, "show": show, "classify": classify, "runs": runs}
    commands[sys.argv[1]](*sys.argv[2:])
