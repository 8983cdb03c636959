"""The export stage: a TensorFlow SavedModel that translates raw strings, and for the
Transformer a CTranslate2 model in its `ctranslate2/` subdirectory (see
`serving.ctranslate2_export`; CTranslate2 has no RNN).

Its `serving_default` signature takes UTF-8 sentences (tf.string, shape [batch]) and
returns {"translation": tf.string [batch]}. SentencePiece runs inside the graph
(tensorflow-text ops) and so does greedy search, so a client needs TensorFlow and
tensorflow-text only: `import tensorflow_text` (it registers the ops), then
`tf.saved_model.load`. Blank inputs give empty outputs and inputs longer than
MAX_INPUT_PIECES pieces are truncated, as in `search.translator.translate_sentences`. One request is
decoded as one batch; the length limit is each sentence's own, so a translation does
not depend on the other sentences of its request.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from nmtpipe.config import ExportConfig
from nmtpipe.fileio import atomic_dir, write_json
from nmtpipe.layout import MODEL_CONFIG, SIDES, tokenizer_file
from nmtpipe.model.ids import EOS_ID, PAD_ID
from nmtpipe.modeldir import CT2_DIR, load_model_dir
from nmtpipe.search.greedy import greedy_search, hyp_lengths
from nmtpipe.search.translator import MAX_INPUT_PIECES
from nmtpipe.serving.ctranslate2_export import export_ctranslate2

log = logging.getLogger(__name__)
SIGNATURE = "serving_default"


def blank_pattern() -> str:
    """An RE2 pattern matching the strings Python's str.strip() empties.

    RE2's \\s is ASCII only; translate_sentences skips every `not s.strip()`, so the
    class lists each character Python counts as whitespace.
    """
    spaces = (c for c in range(sys.maxunicode + 1) if chr(c).isspace())
    return "[" + "".join(f"\\x{{{c:x}}}" for c in spaces) + "]*"


def sentencepiece_tokenizer(spm: bytes) -> tf_text.SentencepieceTokenizer:
    """An in-graph SentencePiece tokenizer whose resource is named after its model bytes.

    A loaded SavedModel names each tokenizer resource after the op that creates it, so
    two tokenizers with the default name share one SentencePiece model (tensorflow/text
    issue #1304). A name derived from the content keeps them apart, also across
    SavedModels loaded into one process.
    """
    name = f"sentencepiece_{hashlib.sha256(spm).hexdigest()[:16]}"
    return tf_text.SentencepieceTokenizer(model=spm, name=name)


class Translator(tf.Module):
    """Model weights, both SentencePiece models and the `translate` graph.

    Args:
        model: a trained Seq2Seq.
        src_spm, tgt_spm: serialized SentencePiece models (the .model files' bytes).
        max_len_ratio: at most max_len_ratio * source pieces + 10 target pieces.
    """

    def __init__(self, model, src_spm: bytes, tgt_spm: bytes, max_len_ratio: float):
        super().__init__(name="translator")
        self.model = model
        self.src_tokenizer = sentencepiece_tokenizer(src_spm)
        self.tgt_tokenizer = sentencepiece_tokenizer(tgt_spm)
        self.max_len_ratio = max_len_ratio
        self.blank = blank_pattern()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def translate(self, sentences):
        """sentences: batch strings -> {"translation": batch strings}, blank -> ""."""
        blank = tf.strings.regex_full_match(sentences, self.blank)  # batch
        keep = tf.where(tf.logical_not(blank))  # n_kept x 1 row indices
        hyps = tf.cond(
            tf.size(keep) > 0,  # the encoder cannot run on an empty batch
            lambda: self._translate(tf.gather_nd(sentences, keep)),
            lambda: tf.zeros([0], tf.string),
        )
        empty = tf.fill(tf.shape(sentences), "")
        return {"translation": tf.tensor_scatter_nd_update(empty, keep, hyps)}

    def _translate(self, sentences):
        """Non-blank sentences (batch) -> greedy translations (batch strings)."""
        pieces = self.src_tokenizer.tokenize(sentences)  # batch x (pieces), ragged
        pieces = pieces[:, : MAX_INPUT_PIECES - 1]  # room for EOS, as translator.truncate
        eos = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(sentences)[0], 1], EOS_ID))
        src = tf.concat([pieces, eos], axis=1).to_tensor(default_value=PAD_ID)  # batch x src_len
        hyps = greedy_search(self.model, src, self.max_len_ratio)  # batch x steps
        return self.tgt_tokenizer.detokenize(
            tf.RaggedTensor.from_tensor(hyps, lengths=hyp_lengths(hyps))
        )


def _derive_fingerprint_uuid(path: Path) -> None:
    """TensorFlow writes a random uuid into the SavedModel's fingerprint.pb: derive it
    from the fingerprint's content hashes instead, so that the same model exports to the
    same bytes (it still changes whenever the graph or the weights do)."""
    from tensorflow.core.protobuf import fingerprint_pb2

    fingerprint = fingerprint_pb2.FingerprintDef.FromString(path.read_bytes())
    fingerprint.ClearField("uuid")
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(int.from_bytes(digest[:16], "big"))  # TF's form: a 128-bit number
    path.write_bytes(fingerprint.SerializeToString(deterministic=True))


def export_model(model_dir: Path, out_dir: Path, cfg: ExportConfig) -> None:
    """Write the SavedModel of model_dir into out_dir, with the model's config.json, and
    for a Transformer its CTranslate2 model into out_dir/ctranslate2.

    config.json gains an "export" section with the decoding settings baked in.
    A missing or broken model is a ModelError and leaves out_dir untouched.
    """
    model_dir = Path(model_dir)
    trained = load_model_dir(model_dir)
    src_spm, tgt_spm = (tokenizer_file(model_dir, side).read_bytes() for side in SIDES)
    translator = Translator(trained.model, src_spm, tgt_spm, cfg.max_len_ratio)
    with atomic_dir(out_dir) as tmp:
        tf.saved_model.save(translator, str(tmp), signatures={SIGNATURE: translator.translate})
        _derive_fingerprint_uuid(tmp / "fingerprint.pb")
        export = {
            "signature": SIGNATURE,
            "decoding": "greedy",
            "max_len_ratio": cfg.max_len_ratio,
            "max_input_pieces": MAX_INPUT_PIECES,
            "ctranslate2": _export_ctranslate2(trained, model_dir, tmp, cfg),
        }
        write_json(tmp / MODEL_CONFIG, {**trained.config, "export": export})
    log.info("exported %s to %s (signature %r)", model_dir, out_dir, SIGNATURE)


def _export_ctranslate2(trained, model_dir: Path, out_dir: Path, cfg: ExportConfig):
    """The Transformer's CTranslate2 model in out_dir/ctranslate2: its config.json entry
    ({"dir", "quantization"}), or None for an RNN."""
    arch = trained.model.cfg.arch  # the config the network was built from (model.keras)
    if arch != "transformer":
        log.info("CTranslate2 has no RNN (model.arch %s): writing the SavedModel only", arch)
        return None
    export_ctranslate2(trained, model_dir, out_dir / CT2_DIR, cfg.quantization, cfg.max_len_ratio)
    return {"dir": CT2_DIR, "quantization": cfg.quantization}
