"""Batched beam search inside one TensorFlow graph: no Python runs between steps.

Each sentence keeps k live hypotheses (decoder row i*k + b is beam b of sentence i).
The encoder runs once and its output is repeated per beam; a `tf.while_loop` then
calls the model's one-step `decode` with the carried recurrent states (`loop`). Every step,
the 2k best extensions of a sentence (over k x vocab, ties to the lowest index, like
argmax) are read best first until k of them do not end in EOS: those become the live
beams, and the EOS ones ranked before them become finished hypotheses, scored
log_prob / length**length_penalty (the length counts the EOS). An EOS ranked below
the k-th live beam does not count. A sentence is done when it has k finished
hypotheses, or at its own length limit (`max_target_len` of its source pieces), where
its live beams are added as finished (their length without EOS). Done sentences leave
the decoder batch, so the steps of the longest one cost only its own rows.
Log-probabilities are float64, so adding beam scores never reorders tokens that
float32 would tell apart. Used by `BeamSearchDecoder`.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from nmtpipe.model.ids import BOS_ID, EOS_ID
from nmtpipe.search.loop import (
    Growing,
    PerRow,
    PerRowList,
    PerSentence,
    decode_step,
    drop_done,
    encoder_inputs,
    max_target_len,
    pad_to,
    search_loop,
    source_lengths,
    write_rows,
)

NO_SCORE = float("-inf")  # the score of no hypothesis


class Beams(NamedTuple):
    """The search state of the n sentences still searched (n*k decoder rows)."""

    index: PerSentence  # n int32: each sentence's row in the input batch
    limits: PerSentence  # n int32: most target pieces
    live_scores: PerSentence  # n x k float64 log-probabilities, NO_SCORE: no hypothesis
    live_hyps: Growing  # n x k x t int32
    fin_scores: PerSentence  # n x k float64 normalised scores, best first, NO_SCORE: none
    fin_hyps: Growing  # n x k x t int32, PAD_ID after a hypothesis' last piece
    fin_lens: PerSentence  # n x k int32 pieces without EOS
    n_fin: PerSentence  # n int32 finished hypotheses found (may exceed k)
    tokens: PerRow  # n*k int32: the last piece of each live hypothesis
    states: PerRowList  # [n*k x units_i] float32 decoder states
    enc: PerRowList  # n*k x ...: encoder output, its mask (and attention keys)


class Nbest(NamedTuple):
    """The result for the whole batch, filled in as sentences are done."""

    scores: PerSentence  # batch x k float64, best first, NO_SCORE where fewer than k
    hyps: Growing  # batch x k x steps int32
    lengths: PerSentence  # batch x k int32 pieces without EOS


def beam_search(
    model, src: tf.Tensor, beam_size: int, length_penalty: float, max_len_ratio: float
) -> Nbest:
    """The beam_size best hypotheses for src (batch x src_len int32, PAD_ID-padded)."""
    k, batch = beam_size, tf.shape(src)[0]
    enc, states = encoder_inputs(model, src)
    start = _start(batch, k, [tf.repeat(x, k, axis=0) for x in enc + states], len(enc))
    start = start._replace(limits=max_target_len(source_lengths(src), max_len_ratio))
    empty = Nbest(
        tf.fill([batch, k], tf.constant(NO_SCORE, tf.float64)),
        tf.zeros([batch, k, 0], tf.int32),
        tf.zeros([batch, k], tf.int32),
    )

    def step(t, beams, nbest):
        logits, states = decode_step(model, beams.tokens, beams.enc, beams.states)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float64))  # n*k x vocab
        beams, done = _advance(beams._replace(states=states), log_probs, t + 1, k, length_penalty)
        return t + 1, *drop_done(beams, nbest, done, _write_nbest, k)

    return search_loop(step, start, empty)


def _start(batch: tf.Tensor, k: int, rows: list, n_enc: int) -> Beams:
    """Beam 0 of each sentence holds the empty hypothesis, the others hold none.

    rows: the encoder tensors (n_enc of them), then the decoder states, per beam.
    """
    first = tf.one_hot(tf.zeros([batch], tf.int32), k, on_value=0.0, off_value=NO_SCORE)
    return Beams(
        index=tf.range(batch),
        limits=tf.zeros([batch], tf.int32),
        live_scores=tf.cast(first, tf.float64),
        live_hyps=tf.zeros([batch, k, 0], tf.int32),
        fin_scores=tf.fill([batch, k], tf.constant(NO_SCORE, tf.float64)),
        fin_hyps=tf.zeros([batch, k, 0], tf.int32),
        fin_lens=tf.zeros([batch, k], tf.int32),
        n_fin=tf.zeros([batch], tf.int32),
        tokens=tf.fill([batch * k], tf.constant(BOS_ID, tf.int32)),
        states=rows[n_enc:],
        enc=rows[:n_enc],
    )


def _candidates(live_scores: tf.Tensor, log_probs: tf.Tensor, k: int):
    """The 2k best one-piece extensions of each sentence's beams, best first, ties to
    the lowest beam * vocab + piece (like argmax).

    live_scores: n x k; log_probs: n*k x vocab. Returns (scores, beam, piece), n x 2k each.
    """
    n, vocab = tf.shape(live_scores)[0], tf.shape(log_probs)[1]
    scores = live_scores[:, :, None] + tf.reshape(log_probs, [n, k, vocab])  # n x k x vocab
    scores, flat = tf.math.top_k(tf.reshape(scores, [n, k * vocab]), 2 * k)
    return scores, flat // vocab, flat % vocab


def _advance(beams: Beams, log_probs: tf.Tensor, t, k: int, length_penalty: float):
    """Extend every sentence's beams by one piece (to t pieces); log_probs: n*k x vocab.

    Returns the new Beams and which sentences are done (n bool).
    """
    cand_scores, origin, token = _candidates(beams.live_scores, log_probs, k)  # n x 2k
    is_eos = tf.equal(token, EOS_ID)
    # At most k of the 2k candidates end in EOS (one per beam): the first k others go on,
    # and the EOS ones ranked before the k-th of them are finished.
    live_pos = tf.math.top_k(-tf.cast(is_eos, tf.int32), k).indices  # n x k, order kept
    live_scores, live_origin, live_token = (
        tf.gather(x, live_pos, batch_dims=1) for x in (cand_scores, origin, token)
    )
    live_hyps = tf.concat(
        [tf.gather(beams.live_hyps, live_origin, batch_dims=1), live_token[:, :, None]], axis=2
    )  # n x k x t
    non_eos_before = tf.cumsum(tf.cast(~is_eos, tf.int32), axis=1, exclusive=True)
    ended = is_eos & (non_eos_before < k) & (cand_scores > NO_SCORE)  # n x 2k
    n_fin = beams.n_fin + tf.reduce_sum(tf.cast(ended, tf.int32), axis=1)
    cut = (t >= beams.limits) & (n_fin < k)  # n: at the length limit, live beams count
    no_score = tf.constant(NO_SCORE, tf.float64)
    finished = (
        (tf.where(ended, cand_scores, no_score), tf.gather(beams.live_hyps, origin, batch_dims=1)),
        (tf.where(cut[:, None], live_scores, no_score), live_hyps),
    )
    rows = tf.reshape(tf.range(tf.shape(live_pos)[0])[:, None] * k + live_origin, [-1])  # n*k
    beams = beams._replace(
        live_scores=live_scores,
        live_hyps=live_hyps,
        n_fin=n_fin,
        tokens=tf.reshape(live_token, [-1]),
        states=[tf.gather(s, rows) for s in beams.states],  # each beam's origin's state
    )
    return _keep_best(beams, finished, t, k, length_penalty), (n_fin >= k) | (t >= beams.limits)


def _keep_best(beams: Beams, finished, t, k: int, length_penalty: float) -> Beams:
    """Keep the k best of the finished hypotheses so far, those that ended in EOS at
    step t and those cut at the length limit, in that order on ties (a stable sort).

    finished: ((log-probs n x 2k, NO_SCORE: not ended; hyps n x 2k x t-1 without the EOS),
               (log-probs n x k, NO_SCORE: not cut; hyps n x k x t)).
    """
    (ended, ended_hyps), (cut, cut_hyps) = finished
    norm = tf.cast(t, tf.float64) ** length_penalty  # both lengths are t pieces
    scores = tf.concat([beams.fin_scores, ended / norm, cut / norm], axis=1)  # n x 4k
    hyps = tf.concat([pad_to(h, t) for h in (beams.fin_hyps, ended_hyps, cut_hyps)], axis=1)
    lengths = tf.concat(
        [beams.fin_lens, tf.fill(tf.shape(ended), t - 1), tf.fill(tf.shape(cut), t)], axis=1
    )
    fin_scores, best = tf.math.top_k(scores, k)  # n x k
    return beams._replace(
        fin_scores=fin_scores,
        fin_hyps=tf.gather(hyps, best, batch_dims=1),
        fin_lens=tf.gather(lengths, best, batch_dims=1),
    )


def _write_nbest(nbest: Nbest, beams: Beams, done: tf.Tensor) -> Nbest:
    """nbest with the finished hypotheses of the done sentences written in."""
    hyps = pad_to(nbest.hyps, tf.shape(beams.fin_hyps)[2])
    return Nbest(
        write_rows(nbest.scores, beams.index, beams.fin_scores, done),
        write_rows(hyps, beams.index, beams.fin_hyps, done),
        write_rows(nbest.lengths, beams.index, beams.fin_lens, done),
    )
