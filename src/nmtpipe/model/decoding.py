"""Batched greedy decoding: the encoder runs once per batch, the decoder one step at a time.

The one-step decoder is the trained model's own `decode` on a single token with
the carried recurrent state, compiled once with `tf.function` (shape-generic
signatures, so batches of any size and length reuse one graph).
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from nmtpipe.dataset import encode_source
from nmtpipe.logs import progress
from nmtpipe.tokenizer import BOS_ID, EOS_ID, PAD_ID

log = logging.getLogger(__name__)
MAX_INPUT_PIECES = 256  # longer inputs are truncated: far beyond any training sentence


class GreedyDecoder:
    """Greedy search over a Seq2Seq model.

    Args:
        model: a trained nmtpipe Seq2Seq.
        max_len_ratio: at most max_len_ratio * source pieces + 10 target pieces.
    """

    def __init__(self, model, max_len_ratio: float = 2.0):
        self.model, self.max_len_ratio = model, max_len_ratio
        ids = tf.TensorSpec([None, None], tf.int32)
        units = model.units
        state_specs = [tf.TensorSpec([None, units], tf.float32)] * model.n_states
        self.encode = tf.function(lambda src: model.encode(src), input_signature=[ids])
        self.step = tf.function(
            self._step,
            input_signature=[
                tf.TensorSpec([None], tf.int32),
                state_specs,
                tf.TensorSpec([None, None, units], tf.float32),
                tf.TensorSpec([None, None], tf.bool),
            ],
        )

    def _step(self, tokens, states, enc_out, enc_mask):
        """One decoder step: tokens (batch,) -> logits (batch x vocab), new states."""
        logits, states, _ = self.model.decode(tokens[:, None], enc_out, enc_mask, states)
        return logits[:, 0, :], states

    def decode_batch(self, src_ids: list[list[int]]) -> list[list[int]]:
        """Target ids (without BOS/EOS) for a batch of source id sequences."""
        width = max(len(s) for s in src_ids)
        src = np.full((len(src_ids), width), PAD_ID, dtype=np.int32)
        for row, ids in enumerate(src_ids):
            src[row, : len(ids)] = ids
        enc_out, enc_mask, states = self.encode(src)
        tokens = np.full(len(src_ids), BOS_ID, dtype=np.int32)
        finished = np.zeros(len(src_ids), dtype=bool)
        steps = []
        for _ in range(int(self.max_len_ratio * width) + 10):
            logits, states = self.step(tokens, states, enc_out, enc_mask)
            tokens = np.argmax(logits.numpy(), axis=-1).astype(np.int32)
            tokens[finished] = EOS_ID
            steps.append(tokens)
            finished |= tokens == EOS_ID
            if finished.all():
                break
        out = np.stack(steps, axis=1)
        return [
            list(row[: np.argmax(row == EOS_ID)] if (row == EOS_ID).any() else row) for row in out
        ]


def _truncate(ids: list[int]) -> list[int]:
    return ids if len(ids) <= MAX_INPUT_PIECES else ids[: MAX_INPUT_PIECES - 1] + [EOS_ID]


def translate_sentences(
    trained,
    sentences: list[str],
    batch_size: int = 64,
    max_len_ratio: float = 2.0,
    desc: str = "translate",
) -> list[str]:
    """Translate sentences in batches of similar length; one output per input, order kept.

    Empty or blank inputs translate to empty outputs; inputs longer than
    MAX_INPUT_PIECES subword pieces are truncated, with a warning.
    """
    decoder = GreedyDecoder(trained.model, max_len_ratio)
    outputs = [""] * len(sentences)
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    encoded = encode_source(trained.sp_src, [sentences[i] for i in todo])
    src_ids = {i: _truncate(ids) for i, ids in zip(todo, encoded, strict=True)}
    too_long = sum(len(ids) > MAX_INPUT_PIECES for ids in encoded)
    if too_long:
        log.warning("%d input(s) longer than %d pieces were truncated", too_long, MAX_INPUT_PIECES)
    order = sorted(todo, key=lambda i: len(src_ids[i]))
    with progress(total=len(order), desc=desc, unit=" sent") as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            hyps = decoder.decode_batch([src_ids[i] for i in batch])
            for i, ids in zip(batch, hyps, strict=True):
                outputs[i] = trained.sp_tgt.decode([int(t) for t in ids])
            bar.update(len(batch))
    return outputs
