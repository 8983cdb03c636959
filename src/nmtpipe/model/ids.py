"""The special piece ids the network assumes: id 0 is padding (masks, the loss).

The tokenizers are trained with these ids (`tokenizer.train_sentencepiece`).
"""

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
