"""The operator commands besides the deploy: each `run(settings)` returns a report, `show` prints it."""
