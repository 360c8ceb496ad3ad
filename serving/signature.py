"""The serving signature's names: the one definition that export writes into every SavedModel
and that the client, predict, infra validation and evaluate's served-model baseline read.

No TensorFlow here, so a REST client can import it. TF Serving's REST API takes base64 input
for a tensor whose name ends in ``_bytes``, hence ``image_bytes``.
"""

SIGNATURE = "serving_default"  # TF Serving's default signature: a request that names none gets it
PREPROCESS_SIGNATURE = "preprocess"  # the images exactly as the model receives them
IMAGE_INPUT = "image_bytes"  # a batch of encoded images (JPEG, PNG, ...)
PROBABILITIES = "probabilities"  # float32 [N, classes], at evaluate's temperature
CLASSES = "classes"  # string [N, classes]: the class names, in probability order
PREDICTED_CLASS = "predicted_class"  # string [N]: the most probable class's name
# Multi-label models only (a sigmoid probability per label): each label's decision threshold,
# fitted on val, and the labels at or above it, "" in the other places (a fixed-shape tensor,
# as TF Serving's responses need).
THRESHOLDS = "thresholds"  # float32 [N, labels]
PREDICTED_LABELS = "predicted_labels"  # string [N, labels]
OUTPUT_DTYPES = {PROBABILITIES: "float32", CLASSES: "string", PREDICTED_CLASS: "string"}  # every model's
MULTI_LABEL_OUTPUT_DTYPES = {THRESHOLDS: "float32", PREDICTED_LABELS: "string"}  # and a multi-label model's
