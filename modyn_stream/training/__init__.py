"""Training: models, payload decoding and fetching, the training loop, the model store, the trainer service."""
