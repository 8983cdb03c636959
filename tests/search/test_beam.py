"""Beam search in one graph, against a plain-Python reference search."""

import numpy as np
import pytest
import tensorflow as tf

from nmtpipe.search.decoders import BeamSearchDecoder, GreedyDecoder, SearchSettings
from tests.tiny_models import batch, stacked, tiny


def sequence_log_prob(model, src_row, ids):
    """log p(ids + EOS | src) by teacher forcing, the reference for beam scores."""
    tgt_in = np.array([[2, *ids]], dtype="int32")
    logits = np.asarray(model((src_row[None, :], tgt_in)))[0]
    log_probs = logits - np.log(np.sum(np.exp(logits), axis=-1, keepdims=True))
    return float(sum(log_probs[t, tok] for t, tok in enumerate([*ids, 3])))


def ending_sometimes(model):
    """An untrained model biased towards EOS, so hypotheses end at various lengths."""
    proj = model.output_proj
    proj.bias.assign(np.eye(proj.bias.shape[0], dtype="float32")[3] * 3.0)
    return model


BEAM_STACKS = [  # the deeper stacks trace bigger search graphs: the slow tier
    pytest.param("lstm", (1, 1), id="lstm-1x1"),
    pytest.param("lstm", (2, 2), id="lstm-2x2", marks=pytest.mark.slow),
    pytest.param("gru", (1, 2), id="gru-1x2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("cell, layers", BEAM_STACKS)
def test_beam_of_one_is_greedy(cell, layers):
    model = stacked(cell, layers)
    src_ids = [list(s[s > 0]) for s in batch(3)[0]] + [[5, 6, 7, 3]]
    greedy = GreedyDecoder(model, SearchSettings(max_len_ratio=1.0)).decode_batch(src_ids)
    beam = BeamSearchDecoder(model, SearchSettings(1, max_len_ratio=1.0)).decode_batch(src_ids)
    assert beam == greedy


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_scores_are_sorted_length_normalised_log_probs(length_penalty):
    model = ending_sometimes(tiny("bahdanau", cell="gru"))
    src, _ = batch(4)
    decoder = BeamSearchDecoder(model, SearchSettings(4, length_penalty, max_len_ratio=1.0))
    checked = 0
    for row, nbest in zip(src, decoder.nbest_batch([list(s[s > 0]) for s in src]), strict=True):
        scores = [score for score, _ in nbest]
        assert len(nbest) == 4 and scores == sorted(scores, reverse=True)
        assert len({tuple(ids) for _, ids in nbest}) == 4
        for score, ids in nbest:
            if len(ids) < 16:  # not cut by the length limit (6 * 1.0 + 10): ends with EOS
                log_prob = sequence_log_prob(model, row[row > 0], ids)
                expected = log_prob / (len(ids) + 1) ** length_penalty
                assert score == pytest.approx(expected, rel=1e-4, abs=1e-4)
                checked += 1
    assert checked >= 3


class MarkovModel:
    """A stand-in for Seq2Seq whose next-piece scores follow the previous piece and a
    recurrent state started from the source, so that beam search hypotheses end at
    many different steps, and some only at the length limit."""

    def __init__(self, vocab_size=12, seed=0):
        rng = np.random.default_rng(seed)
        self.table = rng.normal(0, 2, (vocab_size, vocab_size)).astype("float32")
        self.table[:, 3] += 2.6  # EOS often enough that hypotheses end at many lengths
        self.embed = rng.normal(0, 1, (vocab_size, 2)).astype("float32")
        self.out = rng.normal(0, 1, (2, vocab_size)).astype("float32")

    def encode(self, src):
        src = tf.convert_to_tensor(src)
        total = tf.cast(tf.reduce_sum(src, axis=1, keepdims=True) % 5, tf.float32)  # batch x 1
        enc_out = tf.zeros(tf.concat([tf.shape(src), [1]], 0))
        return enc_out, tf.not_equal(src, 0), [tf.concat([total, -total], 1) / 2]

    def attention_keys(self, enc_out):
        return None

    def decode(self, tgt_in, enc_out, enc_mask, states, training=False, enc_keys=None):
        state = 0.7 * states[0] + tf.gather(self.embed, tgt_in[:, 0])  # batch x 2
        logits = tf.gather(self.table, tgt_in[:, 0]) + tf.matmul(state, self.out)
        return logits[:, None, :], [state], None


def reference_beam_search(model, src_ids, k, length_penalty, max_len_ratio):
    """BeamSearchDecoder's rules in plain Python, one sentence, one beam at a time."""
    enc_out, enc_mask, states = model.encode(np.array([src_ids], "int32"))
    live, finished = [(0.0, [], states)], []
    for t in range(1, int(max_len_ratio * len(src_ids)) + 11):  # t: pieces after this step
        cands = []
        for beam, (score, ids, st) in enumerate(live):
            token = np.array([[ids[-1] if ids else 2]], "int32")
            logits, st, _ = model.decode(token, enc_out, enc_mask, st)
            logits = np.asarray(logits, "float64")[0, 0]
            logits -= np.max(logits)
            log_probs = logits - np.log(np.sum(np.exp(logits)))
            cands += [(score + lp, beam, tok, st) for tok, lp in enumerate(log_probs)]
        new_live = []
        for score, beam, tok, st in sorted(cands, key=lambda c: (-c[0], c[1], c[2])):
            if len(new_live) == k:
                break  # an EOS ranked below the k-th live beam does not count
            if tok == 3:
                finished.append((score / t**length_penalty, live[beam][1]))
            else:
                new_live.append((score, live[beam][1] + [tok], st))
        live = new_live
        if len(finished) >= k:
            break
    else:  # cut off by the length limit: live beams count as finished, without EOS
        finished += [(score / t**length_penalty, ids) for score, ids, _ in live]
    return sorted(finished, key=lambda hyp: -hyp[0])[:k]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_follows_the_documented_rules(length_penalty):
    """The graph search gives the plain-Python reference's n-best lists, for sentences
    done at different steps of one batch, some of them cut by the length limit."""
    model, rng = MarkovModel(), np.random.default_rng(5)
    src_ids = [[*rng.integers(4, 12, n).tolist(), 3] for n in rng.integers(1, 9, 24)]
    decoder = BeamSearchDecoder(model, SearchSettings(4, length_penalty, max_len_ratio=0.5))
    lengths = []
    for ids, nbest in zip(src_ids, decoder.nbest_batch(src_ids), strict=True):
        expected = reference_beam_search(model, ids, 4, length_penalty, 0.5)
        assert [hyp for _, hyp in nbest] == [hyp for _, hyp in expected]
        # float32 search vs the float64 reference: a few ulps per step, whatever the CPU
        assert [sc for sc, _ in nbest] == pytest.approx([sc for sc, _ in expected], rel=1e-6)
        lengths += [len(hyp) - int(0.5 * len(ids)) - 10 for _, hyp in nbest]
    assert lengths.count(0) >= 3 and len(set(lengths)) >= 8  # cut ones, and many lengths
