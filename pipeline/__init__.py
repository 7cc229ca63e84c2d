"""mgold pipeline: ingest, synthetic universe, SQL runner, Python stages and the CLI."""
