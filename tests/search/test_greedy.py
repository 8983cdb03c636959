"""Greedy search in one graph."""

import numpy as np

from nmtpipe.search.decoders import GreedyDecoder, SearchSettings
from tests.tiny_models import batch, tiny


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
