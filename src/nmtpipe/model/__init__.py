"""Keras layers and the encoder-decoder network; no I/O, no data imports."""
