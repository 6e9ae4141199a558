"""The pure core: plain data in, plain data out. No driver, no os, no logging."""
