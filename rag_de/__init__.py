"""spaces-rag-de: the shared glue (CLI, typed configs, atomic file writes, the embedded base model)."""

__version__ = "0.1.0"
