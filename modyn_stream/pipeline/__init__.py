"""Pipelines: configuration models (Modyn's YAML sections and names), validation, registration."""
