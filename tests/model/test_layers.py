"""What both encoder-decoders share: one embedding matrix for both sides (share_embeddings)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from nmtpipe.config import ModelConfig
from nmtpipe.errors import ModelError
from nmtpipe.model.build import build_model
from nmtpipe.model.losses import masked_loss
from tests.tiny_models import batch

VOCAB = 40  # batch(): source ids < 30, target ids < 40
ARCHS = {  # tie_embeddings too: the matrix is also the output kernel (three-way tying)
    "rnn": ModelConfig(embedding_dim=8, units=16, dropout=0.0, tie_embeddings=True),
    "transformer": ModelConfig(
        arch="transformer", embedding_dim=16, heads=4, ff_dim=32, dropout=0.0, tie_embeddings=True
    ),
}


def shared(arch: str, share: bool = True):
    return build_model(dataclasses.replace(ARCHS[arch], share_embeddings=share), VOCAB, VOCAB)


@pytest.mark.parametrize("arch", ARCHS)
def test_one_matrix_embeds_both_sides_and_projects_the_output(arch):
    model, separate = shared(arch), shared(arch, share=False)
    assert model.src_embedding is model.tgt_embedding
    name = model.name
    assert [w.path for w in model.weights if "embedding" in w.path] == [
        f"{name}/src_embedding/embeddings"
    ]
    assert len(model.trainable_weights) == len(separate.trainable_weights) - 1
    dim = ARCHS[arch].embedding_dim
    assert separate.count_params() - model.count_params() == VOCAB * dim
    src, tgt_in = batch()
    bias = np.random.default_rng(2).normal(size=VOCAB).astype("float32")
    model.output_proj.bias.assign(bias)
    model.src_embedding.embeddings.assign(np.zeros((VOCAB, dim), "float32"))
    # a zero matrix: every logit is the output bias (the matrix is the output kernel too)
    np.testing.assert_allclose(model((src, tgt_in)), np.broadcast_to(bias, (3, 5, VOCAB)))


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_model_trains_and_round_trips(tmp_path, arch):
    keras.utils.set_random_seed(3)
    model = shared(arch)
    src, tgt_in = batch()
    optimizer = keras.optimizers.Adam(0.01)
    losses, before = [], model.src_embedding.get_weights()[0]
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = masked_loss(tgt_in, model((src, tgt_in), training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
        losses.append(float(loss))
    assert losses[1] < losses[0]
    moved = np.abs(model.src_embedding.get_weights()[0] - before).sum(axis=-1)
    assert (moved[4:] > 0).all()  # every piece's row (through the output softmax)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    assert loaded.src_embedding is loaded.tgt_embedding and loaded.cfg == model.cfg
    np.testing.assert_array_equal(loaded((src, tgt_in)), model((src, tgt_in)))
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]


def test_shared_embeddings_need_one_vocabulary():
    message = "model.share_embeddings needs one vocabulary, got 30 source and 40 target pieces"
    with pytest.raises(ModelError, match=message):
        build_model(ModelConfig(share_embeddings=True), 30, 40)
