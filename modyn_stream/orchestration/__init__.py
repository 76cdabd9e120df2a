"""Orchestration: running a whole pipeline, every service in one process."""
