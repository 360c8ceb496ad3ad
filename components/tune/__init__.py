"""The tune stage: spec.py declares what goes in and out, executor.py does the work."""
