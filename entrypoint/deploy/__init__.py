"""The main command's flow: prepare a plan under the lock, then carry it out."""
