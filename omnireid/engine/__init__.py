"""Training engine: the training step and epoch loop (``loop``), its callbacks (``callbacks``:
schedule, evaluation, logs, checkpoints, frozen-base stages, collapse detection), resumable
checkpoints, optimisers and lr schedules, and DDP helpers."""
