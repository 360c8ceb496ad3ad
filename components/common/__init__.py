"""Code shared by several stages: tf.data over the examples, loading and scoring models."""
