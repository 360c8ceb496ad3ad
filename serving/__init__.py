"""Serving: TFLite runner, prediction CLI helpers and TF Serving deployment files."""
