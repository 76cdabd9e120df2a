"""`python -m modyn_stream` is the `modyn-stream` command."""

from modyn_stream.cli.main import main

main()
