"""From a file, a paste or a URL to embedded chunks: extract, chunk, fetch, and the pipeline."""
