"""Matrix-multiply FLOPs of a training step, counted analytically from the model's shapes.

Each network counts its own forward pass, part by part (`forward_flops` of the
classes in nmtpipe.model, whose docstrings hold the formulas), a multiply-add
counting 2 FLOPs. A training step costs 3x the forward pass: backpropagation runs
two matmuls per forward matmul (gradients of its input and of its weights).
Padding positions count, since the layers compute them. Not counted (no matmul,
memory-bound): embedding lookups, gate nonlinearities, softmax, loss, dropout, the
optimizer.
"""

from __future__ import annotations

TRAIN_FACTOR = 3  # forward + backward (2 matmuls per forward matmul)


def train_step_flops(model, batch: int, src_len: int, tgt_len: int) -> int:
    """Matmul FLOPs of one training step (forward + backward) on one padded batch."""
    return TRAIN_FACTOR * sum(model.forward_flops(batch, src_len, tgt_len).values())
