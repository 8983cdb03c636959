"""nmtpipe's remove_duplicates writes what OpusFilter's writes, in a fraction of the memory."""

import random

import numpy as np
import pytest
from opusfilter.opusfilter import OpusFilter

from nmtpipe.corpus.dedup import HashSet, LowMemoryOpusFilter
from tests.conftest import sample_pairs


def test_hash_set_marks_first_occurrences_across_chunks():
    keys = np.array([5, 3, 5, 9, 3, 1], dtype=np.uint64)
    seen = HashSet()
    assert seen.add_new(keys[:3]).tolist() == [True, True, False]
    assert seen.add_new(keys[3:]).tolist() == [True, False, True]
    assert seen.keys.tolist() == [1, 3, 5, 9]


@pytest.mark.parametrize("options", [{}, {"compare": [0], "lowercase": True}])
def test_remove_duplicates_writes_what_opusfilter_writes(tmp_path, options):
    pairs = sample_pairs(400)
    rng = random.Random(0)
    pairs += [rng.choice(pairs) for _ in range(150)]  # exact repeats, far and near
    pairs += [(s.upper(), t) for s, t in rng.sample(pairs, 40)]  # repeats up to case
    rng.shuffle(pairs)
    for side, index in (("src", 0), ("tgt", 1)):
        text = "".join(pair[index] + "\n" for pair in pairs)
        (tmp_path / f"in.{side}").write_text(text, encoding="utf-8")
    outputs = {}
    for name, cls in (("ours", LowMemoryOpusFilter), ("opusfilter", OpusFilter)):
        step = {"inputs": ["in.src", "in.tgt"], "outputs": [f"{name}.src", f"{name}.tgt"]}
        runner = cls({"common": {"output_directory": str(tmp_path)}, "steps": []})
        runner.chunk = 64  # many chunks: duplicates across and within them
        runner.remove_duplicates({**step, **options}, overwrite=True)
        outputs[name] = [(tmp_path / f"{name}.{side}").read_bytes() for side in ("src", "tgt")]
    assert outputs["ours"] == outputs["opusfilter"]
    kept = outputs["ours"][0].decode().count("\n")
    assert kept < len(pairs) - 150  # the repeats went
