"""Batched greedy and beam decoding: the encoder runs once per batch, the decoder one
step at a time.

The one-step decoder is the trained model's own `decode` on a single token with
the carried recurrent state, compiled with `tf.function` (shape-generic signatures,
so batches of any size and length reuse one graph). Greedy search runs its whole
loop in that graph (`graph_decoding`); beam search steps from Python.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from nmtpipe.dataset import encode_source
from nmtpipe.logs import progress
from nmtpipe.model.graph_decoding import greedy_search, hyp_lengths
from nmtpipe.tokenizer import BOS_ID, EOS_ID, PAD_ID

log = logging.getLogger(__name__)
MAX_INPUT_PIECES = 256  # longer inputs are truncated: far beyond any training sentence


def pad_batch(src_ids: list[list[int]]) -> np.ndarray:
    """Right-pad id sequences with PAD_ID into a batch x max_len int32 array."""
    src = np.full((len(src_ids), max(len(s) for s in src_ids)), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(src_ids):
        src[row, : len(ids)] = ids
    return src


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, in the precision of `logits` (float64 here,
    so adding beam scores never reorders tokens that float32 would tell apart)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


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
        self.search = tf.function(self._search, input_signature=[ids])
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

    def _search(self, src):
        """src: batch x src_len -> (hyps batch x steps, lengths before EOS batch)."""
        hyps = greedy_search(self.model, src, self.max_len_ratio)
        return hyps, hyp_lengths(hyps)

    def max_len(self, src: np.ndarray) -> int:
        return int(self.max_len_ratio * src.shape[1]) + 10

    def decode_batch(self, src_ids: list[list[int]]) -> list[list[int]]:
        """Target ids (without BOS/EOS) for a batch of source id sequences."""
        hyps, lengths = self.search(pad_batch(src_ids))
        return [row[:n].tolist() for row, n in zip(hyps.numpy(), lengths.numpy(), strict=True)]


class BeamSearchDecoder(GreedyDecoder):
    """Batched beam search; hypotheses rank by log-probability / length**length_penalty.

    Each sentence keeps `beam_size` live rows (row i*k + b is beam b of sentence i);
    the encoder runs once and its output is repeated per beam. A sentence is done
    when it has `beam_size` finished hypotheses; beam_size 1 is greedy search.
    """

    def __init__(
        self, model, beam_size: int = 5, length_penalty: float = 1.0, max_len_ratio: float = 2.0
    ):
        super().__init__(model, max_len_ratio)
        self.beam_size, self.length_penalty = beam_size, length_penalty

    def normalise(self, log_prob: float, length: int) -> float:
        return float(log_prob) / max(length, 1) ** self.length_penalty

    def nbest_batch(self, src_ids: list[list[int]]) -> list[list[tuple[float, list[int]]]]:
        """Up to beam_size (normalised score, target ids) per source, best first.

        A hypothesis' length counts its EOS, the log-probability includes it.
        """
        k, batch, src = self.beam_size, len(src_ids), pad_batch(src_ids)
        enc_out, enc_mask, states = self.encode(src)
        enc_out, enc_mask = np.repeat(enc_out, k, 0), np.repeat(enc_mask, k, 0)
        states = [np.repeat(s, k, 0) for s in states]
        beams = [[(0.0 if b == 0 else -np.inf, []) for b in range(k)] for _ in range(batch)]
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
        tokens = np.full(batch * k, BOS_ID, dtype=np.int32)
        for _ in range(self.max_len(src)):
            logits, states = self.step(tokens, states, enc_out, enc_mask)
            log_probs = log_softmax(logits.numpy().astype(np.float64)).reshape(batch, k, -1)
            rows, tokens = self._advance(beams, finished, log_probs)
            if all(len(f) >= k for f in finished):
                break
            states = [tf.gather(s, rows) for s in states]
        for sentence, live in zip(finished, beams, strict=True):  # cut off by the length limit
            if len(sentence) < k:
                sentence += [
                    (self.normalise(sc, len(ids)), ids) for sc, ids in live if sc > -np.inf
                ]
        return [sorted(f, key=lambda hyp: -hyp[0])[:k] for f in finished]

    def _advance(self, beams, finished, log_probs):
        """Extend every sentence's beams by one token; return source rows and next tokens."""
        k, vocab = self.beam_size, log_probs.shape[-1]
        rows, tokens = np.zeros((len(beams), k), dtype=np.int64), np.full((len(beams), k), EOS_ID)
        for i, live in enumerate(beams):
            scores = np.array([sc for sc, _ in live])[:, None] + log_probs[i]  # k x vocab
            new_live = []
            if len(finished[i]) < k:
                for flat in _top(scores.ravel(), 2 * k):
                    beam, token = divmod(int(flat), vocab)
                    score, prefix = scores[beam, token], live[beam][1]
                    if score == -np.inf or len(new_live) == k:
                        break  # an EOS ranked below the k-th live beam does not count
                    if token == EOS_ID:
                        finished[i].append((self.normalise(score, len(prefix) + 1), prefix))
                    else:
                        rows[i, len(new_live)], tokens[i, len(new_live)] = i * k + beam, token
                        new_live.append((score, prefix + [token]))
            new_live += [(-np.inf, [])] * (k - len(new_live))
            beams[i] = new_live
        return rows.reshape(-1), tokens.reshape(-1).astype(np.int32)

    def decode_batch(self, src_ids: list[list[int]]) -> list[list[int]]:
        return [nbest[0][1] if nbest else [] for nbest in self.nbest_batch(src_ids)]


def attention_weights(model, src_ids: list[int], tgt_ids: list[int]) -> np.ndarray | None:
    """Attention of one translation, (len(tgt_ids) + 1) x len(src_ids), the last row for EOS.

    Teacher-forced on the translation's own pieces: the decoder is deterministic
    given its prefix, so these are the weights the search computed. None without
    attention.
    """
    src = np.array([src_ids], dtype=np.int32)
    tgt_in = np.array([[BOS_ID, *tgt_ids]], dtype=np.int32)
    enc_out, enc_mask, states = model.encode(src)
    _, _, weights = model.decode(tgt_in, enc_out, enc_mask, states)
    return None if weights is None else np.asarray(weights)[0]


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best scores, best first; ties go to the lowest index (as argmax)."""
    best = np.argpartition(-scores, n)[:n] if n < scores.size else np.arange(scores.size)
    return best[np.lexsort((best, -scores[best]))]


def _truncate(ids: list[int]) -> list[int]:
    return ids if len(ids) <= MAX_INPUT_PIECES else ids[: MAX_INPUT_PIECES - 1] + [EOS_ID]


def translate_sentences(
    trained,
    sentences: list[str],
    batch_size: int = 64,
    max_len_ratio: float = 2.0,
    beam_size: int = 1,
    length_penalty: float = 1.0,
    desc: str = "translate",
    decoder: GreedyDecoder | None = None,
) -> list[str]:
    """Translate sentences in batches of similar length; one output per input, order kept.

    Empty or blank inputs translate to empty outputs; inputs longer than
    MAX_INPUT_PIECES subword pieces are truncated, with a warning. A `decoder`
    made once can be passed in to reuse its compiled graphs (then beam_size,
    length_penalty and max_len_ratio are the decoder's own).
    """
    if decoder is None:
        decoder = (
            GreedyDecoder(trained.model, max_len_ratio)
            if beam_size == 1
            else BeamSearchDecoder(trained.model, beam_size, length_penalty, max_len_ratio)
        )
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
