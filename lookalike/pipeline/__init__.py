"""The ingest pipeline: the queue contract, job records, confined fetching of image sources, one
chunk from bytes to stored vectors, and reindexing for another model."""
