"""Errors that end a run with a one-line reason (and nothing written)."""


class InputError(Exception):
    """Input the job cannot use: names the table, file, column and row where known."""


class OutputBusy(Exception):
    """Another run is writing the same output directory."""
