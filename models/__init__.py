"""Model registry, builders and the preprocessing shared by training, evaluation and serving."""
