"""Reading input batches into the workspace: files, source profiles, validation, atomic loads."""

from fundtrace.ingest.load import BatchResult, load_paths

__all__ = ["BatchResult", "load_paths"]
