"""The ``dan`` command line: parses arguments and calls the library. Nothing imports this package."""
