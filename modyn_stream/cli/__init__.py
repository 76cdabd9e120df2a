"""The `modyn-stream` command line."""
