"""Evaluation: model versions scored on time windows of evaluation datasets."""
