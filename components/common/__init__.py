"""Code shared by several stages: reading examples as tf.data datasets."""
