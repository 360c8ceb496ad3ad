"""The data_quality stage: spec.py declares what goes in and out, executor.py does the work."""
