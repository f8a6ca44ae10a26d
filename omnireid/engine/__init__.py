"""Training engine: optimisers, learning-rate schedules and staged fine-tuning."""
