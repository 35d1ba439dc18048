"""Training: the loop, evaluation passes, early stopping on a monitored validation figure, device choice."""
