"""Replay: publish a dataset from files as a stream of timestamped SampleEvents."""
