"""entrypoint."""
