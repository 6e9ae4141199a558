"""Backups: the dump, the S3 store, and reading a dump back."""
