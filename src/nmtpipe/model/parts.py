"""The named parts of the network that `train.freeze` can keep fixed, by layer name.

Plain data (no Keras import), so that config.py validates `train.freeze` before
TensorFlow loads. Seq2Seq's layer names: the encoder is "encoder" when bidirectional,
"encoder_rnn" otherwise; "attention" exists unless attention=none; "tie_projection"
with tie_embeddings when units != embedding_dim. Stacked layers 2..N carry a suffix:
encoder_2, decoder_rnn_3 (STACKED).
"""

FREEZE_LAYERS = {
    "embeddings": ("src_embedding", "tgt_embedding"),
    "encoder": ("encoder", "encoder_rnn"),
    "decoder": ("decoder_rnn", "attention", "attention_combine", "tie_projection", "output_proj"),
}
STACKED = ("encoder", "encoder_rnn", "decoder_rnn")
