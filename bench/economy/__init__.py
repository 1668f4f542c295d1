"""Graph economy benchmark of the license gate (python -m bench.economy)."""
