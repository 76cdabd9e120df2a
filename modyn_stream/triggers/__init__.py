"""Triggers: when to retrain, decided over samples in (event_time, key) order up to the watermark."""
