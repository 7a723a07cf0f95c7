"""Training: configuration, tasks, the trainer loop, resumable checkpoints, data parallelism."""
