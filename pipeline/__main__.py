"""`python -m pipeline` is the `zombiescan` command."""

from pipeline.cli import entry

entry()
