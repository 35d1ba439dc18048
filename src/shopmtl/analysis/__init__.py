"""Analysis: single- vs multi-task comparison and the run report."""
