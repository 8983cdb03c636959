"""Training: fit with teacher forcing, callbacks, resumable checkpoints, schedules, transfer."""
