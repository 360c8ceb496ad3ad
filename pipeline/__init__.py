"""Orchestration: the config tree, the stage graph, artifacts, the metadata store, the runner and the CLI."""
