"""Checks of the suite on a GPU machine (gpu/check.sh); not part of the installed `benchmark` package."""
