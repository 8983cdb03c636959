"""Keras layers, the encoder-decoder, decoding and the model directory format."""
