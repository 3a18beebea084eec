"""The ``magnetar`` command line (typer): each command parses its options and calls the library."""
