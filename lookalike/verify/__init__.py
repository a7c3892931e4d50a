"""Stage 2 of search: local features of catalogue images (computed once, at ingest) matched
against the query photo and verified with a RANSAC homography; the evidence re-ranks the
stage-1 shortlist of the global vector."""
