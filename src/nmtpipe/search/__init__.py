"""Greedy and beam search, each one `tf.while_loop` graph over a one-step decoder."""
