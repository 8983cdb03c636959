"""Text to ids and back: the SentencePiece tokenizers (`tokenizer`), the encode stage
(`encode`: text pairs to ids), the shard record format (`records`: writer and reader)
and the tf.data batches training and evaluation read (`batches`)."""
