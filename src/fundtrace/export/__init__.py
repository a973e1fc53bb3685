"""Exports for people outside the workspace: the freeze list for banks, reports."""
