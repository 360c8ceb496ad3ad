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
OUTPUT_DTYPES = {PROBABILITIES: "float32", CLASSES: "string", PREDICTED_CLASS: "string"}
