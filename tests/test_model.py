import numpy as np
import pytest
import tensorflow as tf

from nmtpipe.config import ModelConfig
from nmtpipe.model.attention import Attention
from nmtpipe.model.losses import masked_loss, training_loss
from nmtpipe.model.seq2seq import build_model
from nmtpipe.search.decoders import BeamSearchDecoder, GreedyDecoder, SearchSettings, make_decoder

ATTENTIONS = [("luong", "general"), ("luong", "dot"), ("bahdanau", "general"), ("none", "dot")]
STACKS = [("lstm", (1, 1)), ("lstm", (2, 2)), ("gru", (2, 2)), ("gru", (3, 2))]  # cell, depths


def stack_ids(stacks):
    return [f"{cell}-{enc}x{dec}" for cell, (enc, dec) in stacks]


def tiny(attention="luong", luong_score="general", cell="lstm", bidirectional=True, **options):
    """A tiny model; options: other ModelConfig keys (layers, residual, tie_embeddings)."""
    cfg = ModelConfig(
        cell=cell,
        bidirectional=bidirectional,
        attention=attention,
        luong_score=luong_score,
        **{"embedding_dim": 8, "units": 16, "dropout": 0.0, **options},
    )
    return build_model(cfg, src_vocab_size=30, tgt_vocab_size=40)


def stacked(cell, layers, **kwargs):
    return tiny(cell=cell, encoder_layers=layers[0], decoder_layers=layers[1], **kwargs)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(4, 30, (3, 6)).astype("int32")
    src[0, 4:] = 0  # first sentence is shorter: padded
    tgt_in = rng.integers(4, 40, (3, 5)).astype("int32")
    return src, tgt_in


@pytest.mark.parametrize(
    "kind, score", [("luong", "general"), ("luong", "dot"), ("bahdanau", "general")]
)
def test_attention_weights_are_distributions_that_ignore_padding(kind, score):
    layer = Attention(4, kind, score)
    rng = np.random.default_rng(1)
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    keys = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    context, weights = layer(query, keys, mask)
    assert context.shape == (2, 3, 4) and weights.shape == (2, 3, 5)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(weights)[0, :, 3:] < 1e-6)
    expected = np.einsum("bts,bsk->btk", np.asarray(weights), keys)
    np.testing.assert_allclose(context, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("attention, score", ATTENTIONS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_does_not_change_the_output(attention, score, cell):
    model = tiny(attention, score, cell)
    src, tgt_in = batch()
    padded = np.concatenate([src, np.zeros((3, 4), "int32")], axis=1)
    np.testing.assert_allclose(model((src, tgt_in)), model((padded, tgt_in)), atol=1e-5)


@pytest.mark.parametrize("cell, layers", STACKS[1:], ids=stack_ids(STACKS[1:]))
@pytest.mark.parametrize("bidirectional", [True, False])
def test_stacked_models_ignore_padding(cell, layers, bidirectional):
    model = stacked(cell, layers, bidirectional=bidirectional)
    src, tgt_in = batch()
    padded = np.concatenate([src, np.zeros((3, 4), "int32")], axis=1)
    np.testing.assert_allclose(model((src, tgt_in)), model((padded, tgt_in)), atol=1e-5)


@pytest.mark.parametrize("attention, score", ATTENTIONS)
@pytest.mark.parametrize("cell, layers", STACKS, ids=stack_ids(STACKS))
def test_one_step_decoding_matches_teacher_forcing(attention, score, cell, layers):
    """The inference path (encode and project the attention keys once, decode a token
    at a time with carried state) computes exactly what the training graph computes."""
    model = stacked(
        cell, layers, attention=attention, luong_score=score, bidirectional=attention != "none"
    )
    src, tgt_in = batch()
    full = np.asarray(model((src, tgt_in)))
    enc_out, enc_mask, states = model.encode(src)
    assert len(states) == model.n_states == layers[1] * (2 if cell == "lstm" else 1)
    assert all(s.shape == (3, 16) for s in states)
    enc_keys = model.attention_keys(enc_out)
    assert (enc_keys is None) == (attention == "none")
    for t in range(tgt_in.shape[1]):
        logits, states, weights = model.decode(
            tgt_in[:, t : t + 1], enc_out, enc_mask, states, enc_keys=enc_keys
        )
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-5)
        if weights is not None:
            assert weights.shape == (3, 1, 6)


@pytest.mark.parametrize(
    "cell, options",
    [
        ("gru", {}),
        ("lstm", {"encoder_layers": 2, "decoder_layers": 2}),
        ("gru", {"encoder_layers": 3, "decoder_layers": 2, "residual": False}),
        ("lstm", {"tie_embeddings": True}),  # units 16 != embedding_dim 8: with a projection
        ("gru", {"tie_embeddings": True, "embedding_dim": 16, "decoder_layers": 2}),
    ],
)
def test_save_and_load_round_trip(tmp_path, cell, options):
    import keras

    model = tiny("bahdanau", cell=cell, **options)
    for var in model.weights:  # non-zero biases too, so that every weight must round-trip
        var.assign(np.random.default_rng(5).normal(size=var.shape).astype("float32") * 0.3)
    src, tgt_in = batch()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_array_equal(model((src, tgt_in)), loaded((src, tgt_in)))
    assert loaded.get_config() == model.get_config()
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    assert loaded.attention.kind == "bahdanau"


def test_decoder_layers_start_from_the_matching_encoder_layer():
    """Equal depths: layer by layer; other depths: every decoder layer from the top one."""
    same, fewer, more = (stacked("lstm", (2, n)) for n in (2, 1, 3))
    for other in (fewer, more):
        for name in ("src_embedding", "encoder", "encoder_2"):
            other.get_layer(name).set_weights(same.get_layer(name).get_weights())
    src, _ = batch()
    states = [np.asarray(s) for s in same.encode(src)[2]]  # h1, c1, h2, c2
    top = states[2:]
    for other, copies in ((fewer, 1), (more, 3)):
        got = [np.asarray(s) for s in other.encode(src)[2]]
        assert len(got) == 2 * copies
        for have, want in zip(got, top * copies, strict=True):
            np.testing.assert_allclose(have, want, atol=1e-6)
    assert not np.allclose(states[0], states[2])


def test_default_model_is_unchanged():
    """The defaults build the same single-layer, untied model as before these options."""
    model = build_model(ModelConfig(), 1000, 1000)
    assert model.count_params() == 1_432_808
    assert [layer.name for layer in model.layers] == [
        "src_embedding",
        "tgt_embedding",
        "encoder",
        "decoder_rnn",
        "attention",
        "attention_combine",
        "dropout",
        "output_proj",
    ]


@pytest.mark.parametrize("embedding_dim", [16, 8])  # units 16: tied directly / via projection
def test_tied_output_kernel_is_the_target_embedding(embedding_dim):
    tied = tiny(embedding_dim=embedding_dim, tie_embeddings=True)
    untied = tiny(embedding_dim=embedding_dim)
    vocab, units = 40, 16
    projection = 0 if embedding_dim == units else units * embedding_dim
    assert untied.count_params() - tied.count_params() == units * vocab - projection
    assert (tied.tie_projection is None) == (embedding_dim == units)
    assert [w.path for w in tied.output_proj.weights] == ["seq2seq/output_proj/bias"]
    src, tgt_in = batch()
    bias = np.random.default_rng(2).normal(size=vocab).astype("float32")
    tied.output_proj.bias.assign(bias)
    tied.tgt_embedding.embeddings.assign(np.zeros((vocab, embedding_dim), "float32"))
    np.testing.assert_allclose(tied((src, tgt_in)), np.broadcast_to(bias, (3, 5, vocab)))


@pytest.mark.parametrize("tie", [False, True])
def test_tied_output_trains_the_embedding_rows_of_every_piece(tie):
    """Rows of pieces not in the decoder input get gradient only through the softmax."""
    import tensorflow as tf

    model = tiny(embedding_dim=16, tie_embeddings=tie)
    src, tgt_in = batch()
    with tf.GradientTape() as tape:
        loss = masked_loss(tgt_in, model((src, tgt_in)))
    grad = np.asarray(tf.convert_to_tensor(tape.gradient(loss, model.tgt_embedding.embeddings)))
    unseen = sorted(set(range(4, 40)) - set(tgt_in.ravel()))
    assert np.abs(grad[unseen]).sum(axis=-1).min() > 0 if tie else not grad[unseen].any()


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_label_smoothing_matches_a_hand_computation():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    y = np.array([[4, 2, 0], [1, 0, 0]])  # 3 real positions, 3 padding
    log_p = log_softmax(logits.astype(np.float64))
    real = [(0, 0), (0, 1), (1, 0)]
    plain = np.mean([-log_p[i, t, y[i, t]] for i, t in real])
    assert training_loss(0.0) is masked_loss
    assert float(masked_loss(y, logits)) == pytest.approx(plain, rel=1e-6)
    eps = 0.1
    target = [(1 - eps) * np.eye(5)[y[i, t]] + eps / 5 for i, t in real]
    smoothed = np.mean([-(q * log_p[i, t]).sum() for q, (i, t) in zip(target, real, strict=True)])
    assert float(training_loss(eps)(y, logits)) == pytest.approx(smoothed, rel=1e-6)
    assert smoothed > plain
    other_padding = logits.copy()
    other_padding[y == 0] += rng.normal(size=(3, 5)).astype("float32") * 50
    assert float(training_loss(eps)(y, other_padding)) == pytest.approx(smoothed, rel=1e-6)


def test_masked_loss_ignores_padding():
    logits = np.random.default_rng(0).normal(size=(1, 4, 10)).astype("float32")
    y = np.array([[5, 6, 0, 0]])
    y_other_pad_logits = logits.copy()
    y_other_pad_logits[0, 2:] += 100.0
    assert float(masked_loss(y, logits)) == pytest.approx(float(masked_loss(y, y_other_pad_logits)))
    y_full = np.array([[5, 6, 7, 8]])
    assert float(masked_loss(y, logits)) != pytest.approx(float(masked_loss(y_full, logits)))


def test_greedy_decoder_follows_the_argmax_and_stops_at_eos():
    model = tiny()
    src, _ = batch()
    greedy = GreedyDecoder(model, SearchSettings(max_len_ratio=1.0))
    hyps = greedy.decode_batch([list(s[s > 0]) for s in src])
    enc_out, enc_mask, states = model.encode(src[:1, :4])
    token, expected = np.array([[2]], "int32"), []
    for _ in range(len(hyps[0])):
        logits, states, _ = model.decode(token, enc_out, enc_mask, states)
        token = np.argmax(np.asarray(logits), -1).astype("int32")
        expected.append(int(token[0, 0]))
    assert hyps[0] == expected and 3 not in hyps[0]
    assert all(len(h) <= 1.0 * 6 + 10 for h in hyps)


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


BEAM_STACKS = [("lstm", (1, 1)), ("lstm", (2, 2)), ("gru", (1, 2))]


@pytest.mark.parametrize("cell, layers", BEAM_STACKS, ids=stack_ids(BEAM_STACKS))
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


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_translation_does_not_depend_on_its_batch_mates(beam_size):
    """The length limit is each sentence's own: alone or next to a much longer sentence,
    a sentence gets the same translation (this model never emits EOS: all hit the limit)."""
    model = tiny()
    model.output_proj.bias.assign(np.eye(40, dtype="float32")[3] * -30.0)
    short, long = [5, 6, 3], list(range(4, 30)) + [3]
    decoder = make_decoder(model, SearchSettings(beam_size, max_len_ratio=1.0))
    alone = decoder.decode_batch([short])
    together = decoder.decode_batch([short, long, short])
    assert together == [alone[0], decoder.decode_batch([long])[0], alone[0]]
    assert [len(hyp) for hyp in together] == [3 + 10, 27 + 10, 3 + 10]
    assert decoder.search.experimental_get_tracing_count() == 1  # one graph for all shapes


def test_graph_length_limit_is_the_documented_rule():
    """In-graph limit == int(ratio * n) + 10 in Python floats, also where float32 would
    round differently."""
    from nmtpipe.search.loop import max_target_len

    lengths = np.arange(1, 300, dtype="int32")
    for ratio in (0.1, 0.3, 0.7, 1.1, 1.5, 2.0, 2.3):
        expected = [int(ratio * int(n)) + 10 for n in lengths]
        assert max_target_len(lengths, ratio).numpy().tolist() == expected
