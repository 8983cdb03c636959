"""train.precision: mixed precision where the hardware has the type, float32 elsewhere."""

import dataclasses

import keras
import numpy as np
import pytest

from nmtpipe.config import TrainConfig
from nmtpipe.model.build import build_model
from nmtpipe.training.precision import cpu_flags, dtype_policy, supported_precision
from nmtpipe.training.train import compile_model
from tests.model.test_transformer import CFG
from tests.tiny_models import batch

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
bogomips\t: 4800.00

processor\t: 1
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert {"avx512_bf16", "amx_bf16", "avx2"} <= cpu_flags(tmp_path / "cpuinfo")
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize(
    "requested, flags, gpus, policy",
    [
        ("float32", set(), 0, "float32"),
        ("mixed_bfloat16", {"avx2", "amx_bf16"}, 0, "mixed_bfloat16"),
        ("mixed_bfloat16", {"avx2", "avx512_bf16"}, 0, "mixed_bfloat16"),
        ("mixed_bfloat16", {"avx2", "fma"}, 0, "float32"),  # e.g. AMD Zen 3
        ("mixed_bfloat16", {"avx2"}, 1, "mixed_bfloat16"),
        ("mixed_float16", {"avx512_bf16"}, 0, "float32"),
        ("mixed_float16", set(), 2, "mixed_float16"),
    ],
)
def test_the_policy_falls_back_to_float32_without_the_hardware(requested, flags, gpus, policy):
    got, why = supported_precision(requested, flags, gpus)
    assert got == policy
    assert bool(why) == (policy != requested)


@pytest.mark.parametrize(
    "flags, gpus, gpu_bfloat16, policy",
    [
        ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, 0, False, "mixed_bfloat16"),  # Sapphire R.
        ({"avx2", "avx512f", "avx512_bf16"}, 0, False, "mixed_bfloat16"),  # Cooper Lake, Zen 4
        ({"avx2", "avx512f", "avx512_vnni"}, 0, False, "float32"),  # Cascade Lake
        ({"avx2", "fma", "sha_ni"}, 0, False, "float32"),  # AMD EPYC Zen 3
        (set(), 0, False, "float32"),  # no /proc/cpuinfo
        ({"avx2"}, 1, True, "mixed_bfloat16"),  # an A100 / H100
        ({"amx_bf16"}, 1, False, "float32"),  # a T4 / V100: the GPU trains, not the CPU
    ],
)
def test_auto_picks_bfloat16_only_where_the_hardware_computes_it(flags, gpus, gpu_bfloat16, policy):
    assert supported_precision("auto", flags, gpus, gpu_bfloat16) == (policy, "")


@pytest.fixture
def policy(request):
    with dtype_policy(request.param):
        yield request.param


@pytest.mark.parametrize("policy", ["mixed_bfloat16"], indirect=True)
def test_mixed_bfloat16_trains_with_float32_weights_and_loss(policy):
    model = build_model(dataclasses.replace(CFG, tie_embeddings=True), 30, 40)
    compile_model(model, TrainConfig(label_smoothing=0.1), steps_per_epoch=10)
    model.run_eagerly = True  # a tiny model: tracing the step would take most of the test
    src, tgt_in = batch()
    assert keras.backend.standardize_dtype(model.encode(src)[0].dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(model((src, tgt_in)).dtype) == "float32"  # logits
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch((src, tgt_in), tgt_in, return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["loss"] > 0
    assert {str(w.dtype) for w in model.trainable_weights} == {"float32"}
    assert any((a != b).any() for a, b in zip(before, model.get_weights(), strict=True))


@pytest.mark.parametrize("policy", ["mixed_float16"], indirect=True)
def test_mixed_float16_scales_the_loss(policy):
    model = build_model(CFG, 30, 40)
    compile_model(model, TrainConfig(), steps_per_epoch=10)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
