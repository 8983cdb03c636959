"""The shared search loop: per-sentence length limits."""

import numpy as np
import pytest

from nmtpipe.search.decoders import SearchSettings, make_decoder
from tests.tiny_models import tiny


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
