"""Data: readers per source format, splits, preprocessing fitted on the training split, and batching."""
