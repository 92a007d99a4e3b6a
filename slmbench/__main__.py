"""`python -m slmbench` is the same as the `slmbench` command."""

from slmbench.cli import entry_point

entry_point()
