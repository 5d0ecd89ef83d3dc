"""Real-data benchmark: the pipeline on every dataset spec, side by side with published results."""
