"""The directories a model is used from: everything translation needs, nothing else.

The trained-model directory (train's data/model), for the TensorFlow engine:

model.keras   the Keras encoder-decoder (weights + architecture)
config.json   resolved config: language pair, vocab sizes, model/train params
src.model     SentencePiece source tokenizer
tgt.model     SentencePiece target tokenizer

The CTranslate2 directory (export's data/export/ctranslate2, a Transformer only), for
the CTranslate2 engine: CTranslate2's model.bin, config.json and vocabularies,
src.model, tgt.model and CT2_INFO. Reading it imports no TensorFlow.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from nmtpipe.cores import start_tensorflow
from nmtpipe.errors import ModelError, first_line
from nmtpipe.fileio import write_json
from nmtpipe.ids.tokenizer import load_tokenizer
from nmtpipe.layout import MODEL_CONFIG, MODEL_FILE, SIDES, tokenizer_file

CT2_DIR = "ctranslate2"  # the CTranslate2 directory inside the export stage's directory
CT2_INFO = "nmtpipe.json"  # in a CTranslate2 directory: language pair, decoding limits


@dataclass
class TrainedModel:
    model: object  # an nmtpipe.model.layers.EncoderDecoder (Seq2Seq or Transformer)
    config: dict
    sp_src: object  # sentencepiece.SentencePieceProcessor
    sp_tgt: object


@dataclass
class CTranslate2Model:
    """A CTranslate2 directory, checked: its path, CT2_INFO and tokenizers (the model
    itself is loaded by `search.ctranslate2_engine`)."""

    path: Path
    info: dict  # language pair, quantization, max_positions, decoding limits
    sp_src: object
    sp_tgt: object


def save_model_dir(out_dir: Path, model, config: dict, tokenizer_dir: Path) -> None:
    """Write model, resolved config and tokenizers into out_dir (an existing, empty dir).

    The same weights give the same bytes: model.keras holds no save time.
    """
    model.save(out_dir / MODEL_FILE)
    _drop_save_time(out_dir / MODEL_FILE)
    write_json(out_dir / MODEL_CONFIG, config)
    for side in SIDES:
        shutil.copyfile(tokenizer_file(tokenizer_dir, side), tokenizer_file(out_dir, side))


def _drop_save_time(path: Path) -> None:
    """Rewrite a .keras archive without Keras' `date_saved` and with fixed file dates."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata).encode()
            fixed = zipfile.ZipInfo(info.filename)  # dated 1980-01-01, zip's first day
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            archive.writestr(fixed, data)


def require_model(model_dir: Path) -> None:
    """A ModelError when model_dir holds no trained model (checked before TensorFlow loads)."""
    if not (Path(model_dir) / MODEL_FILE).is_file():
        raise ModelError(f"{model_dir / MODEL_FILE}: trained model not found (run `dvc repro`)")


def load_model_dir(model_dir: Path, pair: tuple[str | None, str | None] = (None, None)):
    """Load a model directory; a missing or broken part is a one-line ModelError.

    pair: (src_lang, tgt_lang) the model must translate, None for either side's "any";
    checked from config.json before the model loads.
    """
    model_dir = Path(model_dir)
    require_model(model_dir)
    try:
        config = json.loads((model_dir / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise ModelError(
            f"{model_dir / MODEL_CONFIG}: missing or invalid ({first_line(err)})"
        ) from None
    have = (config.get("src_lang"), config.get("tgt_lang"))
    _check_pair(have, model_dir, *(want or got for want, got in zip(pair, have, strict=True)))
    sp_src, sp_tgt = (load_tokenizer(tokenizer_file(model_dir, side)) for side in SIDES)

    start_tensorflow()  # only now: TensorFlow takes seconds to import
    import keras

    from nmtpipe.model.build import NETWORKS  # (and registers the custom layers)

    _check_layout(config, model_dir, NETWORKS)

    try:
        model = keras.saving.load_model(model_dir / MODEL_FILE, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(
            f"{model_dir / MODEL_FILE}: cannot load model ({first_line(err)})"
        ) from None
    return TrainedModel(model, config, sp_src, sp_tgt)


def _check_layout(config: dict, model_dir: Path, networks: dict) -> None:
    """A model file of an older weight layout than its network class reads: ModelError."""
    network = networks.get(config.get("model", {}).get("arch"))
    have = config.get("weights_layout", 1)
    if network is not None and have != network.WEIGHTS_LAYOUT:
        raise ModelError(
            f"{model_dir}: saved in weight layout {have}, this nmtpipe reads layout "
            f"{network.WEIGHTS_LAYOUT} for model.arch {config['model']['arch']}: retrain it "
            "(dvc repro)"
        )


def check_pair(trained: TrainedModel, model_dir: Path, src_lang: str, tgt_lang: str) -> None:
    """A model trained for another language pair (or direction) is a ModelError."""
    have = (trained.config.get("src_lang"), trained.config.get("tgt_lang"))
    _check_pair(have, model_dir, src_lang, tgt_lang)


def _check_pair(have: tuple, model_dir: Path, src_lang, tgt_lang) -> None:
    if have != (src_lang, tgt_lang):
        raise ModelError(
            f"{model_dir}: model translates {have[0]}->{have[1]}, not {src_lang}->{tgt_lang}"
        )


def is_ctranslate2_dir(path: Path) -> bool:
    """Whether path is a CTranslate2 directory (holds CT2_INFO)."""
    return (Path(path) / CT2_INFO).is_file()


def load_ctranslate2_dir(path: Path, pair: tuple[str | None, str | None] = (None, None)):
    """Read a CTranslate2 directory's CT2_INFO and tokenizers; a missing or broken part, or
    another language pair (as in `load_model_dir`), is a one-line ModelError."""
    path = Path(path)
    try:
        info = json.loads((path / CT2_INFO).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{path / CT2_INFO}: CTranslate2 model not found (a Transformer's export: "
            "dvc repro export)"
        ) from None
    except json.JSONDecodeError as err:
        raise ModelError(f"{path / CT2_INFO}: invalid ({first_line(err)})") from None
    if not isinstance(info, dict) or not isinstance(info.get("max_positions"), int):
        raise ModelError(f"{path / CT2_INFO}: no max_positions (not written by nmtpipe export)")
    have = (info.get("src_lang"), info.get("tgt_lang"))
    _check_pair(have, path, *(want or got for want, got in zip(pair, have, strict=True)))
    sp_src, sp_tgt = (load_tokenizer(tokenizer_file(path, side)) for side in SIDES)
    return CTranslate2Model(path, info, sp_src, sp_tgt)
