"""The pure core: plain data in, plain data out; no driver, no os, no logging (tests/unit/test_architecture.py)."""
