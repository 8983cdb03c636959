"""Transfer learning: start from an earlier model, pretrained subword embeddings, frozen parts.

`prepare_model` applies, to a freshly built model and before it is compiled:

1. ``train.init_from``: every layer of an earlier model directory is copied by
   layer name. Vocabulary-sized weights (the network's `vocab_axes`: both
   embeddings, the output projection) are mapped by SentencePiece piece string, so
   the tokenizers may differ: pieces in both vocabularies keep their trained rows,
   new pieces their fresh initialisation. Every other weight must have the same
   shape. A model with ``model.share_embeddings`` has no tgt_embedding layer
   (src_embedding is both), so it starts only from another shared model.
2. ``model.src_embeddings`` / ``model.tgt_embeddings``: word2vec text vectors
   overwrite the embedding rows of the pieces they list (so they win over init_from).
3. ``train.freeze``: the named parts stop training (the layers each network declares
   in `freeze_layers`).

DVC sees these params as strings only, so the sha256 of every file read goes
into the record that train.py stores in config.json.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from nmtpipe.config import DataConfig, Params
from nmtpipe.errors import ConfigError, DataError, ModelError, first_line
from nmtpipe.fileio import sha256_file
from nmtpipe.ids.tokenizer import load_tokenizer
from nmtpipe.layout import MODEL_CONFIG, MODEL_FILE, SIDES, tokenizer_file
from nmtpipe.modeldir import check_pair, load_model_dir

log = logging.getLogger(__name__)


def prepare_model(model, params: Params, tok_dir: Path) -> dict:
    """Apply train.init_from, model.*_embeddings and train.freeze to a built model.

    Args:
        model: a built, not yet compiled EncoderDecoder.
        params: all params (data for the language pair, model, train).
        tok_dir: directory of the tokenizers the model is trained with.

    Returns:
        The record for config.json: each file read, with its sha256.
    """
    sp = {side: load_tokenizer(tokenizer_file(tok_dir, side)) for side in SIDES}
    record, loaded = {}, {name: set() for name in model.vocab_axes}  # rows given, per layer
    if params.train.init_from:
        record["init_from"], maps = init_from(model, Path(params.train.init_from), sp, params.data)
        for name, (side, _) in model.vocab_axes.items():
            loaded[name].update(maps[side][0].tolist())
    for side in SIDES:
        path = getattr(params.model, f"{side}_embeddings")
        if path:
            record[f"{side}_embeddings"], ids = load_embeddings(
                model, side, Path(path), sp[side], params.model.embedding_dim
            )
            loaded[getattr(model, f"{side}_embedding").name].update(ids)
    freeze(model, params.train.freeze)
    _warn_untrained(model, params.train.freeze, loaded, bool(params.train.init_from))
    return record


# --- train.init_from ---------------------------------------------------------------------


def init_from(model, model_dir: Path, sp: dict, data: DataConfig) -> tuple[dict, dict]:
    """Copy the weights of the model in model_dir into `model` (see the module docstring).

    Returns the record for config.json and, per side, the piece map (new ids, old ids).
    """
    old = _load_earlier(model_dir, data)
    maps = {side: piece_map(sp[side], getattr(old, f"sp_{side}")) for side in SIDES}
    copy_weights(model, old.model, maps, f"train.init_from {model_dir}")
    for side, (new_ids, _) in maps.items():
        log.info(
            "init_from %s: %d of %d %s pieces carried over",
            model_dir,
            len(new_ids),
            sp[side].get_piece_size(),
            side,
        )
    files = [model_dir / MODEL_FILE, model_dir / MODEL_CONFIG]
    files += [tokenizer_file(model_dir, side) for side in SIDES]
    record = {
        "path": str(model_dir),
        "sha256": {path.name: sha256_file(path) for path in files},
        "pieces_carried_over": {side: len(maps[side][0]) for side in SIDES},
    }
    return record, maps


def _load_earlier(model_dir: Path, data: DataConfig):
    """The earlier model directory, for the same language pair, or a one-line ModelError."""
    if not (model_dir / MODEL_FILE).is_file():
        raise ModelError(f"train.init_from {model_dir}: not a model directory (no {MODEL_FILE})")
    try:
        old = load_model_dir(model_dir)
        check_pair(old, model_dir, data.src_lang, data.tgt_lang)
    except ModelError as err:
        raise ModelError(f"train.init_from: {err}") from None
    return old


def pieces(sp) -> list[str]:
    """The piece strings of a SentencePiece model, by id."""
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def piece_map(sp_new, sp_old) -> tuple[np.ndarray, np.ndarray]:
    """Ids of the pieces both vocabularies hold: (ids in sp_new, the same pieces' ids in sp_old)."""
    old_ids = {piece: i for i, piece in enumerate(pieces(sp_old))}
    pairs = [(i, old_ids[piece]) for i, piece in enumerate(pieces(sp_new)) if piece in old_ids]
    new, old = zip(*pairs, strict=True) if pairs else ((), ())
    return np.array(new, dtype=np.int64), np.array(old, dtype=np.int64)


def copy_weights(model, old_model, maps: dict, source: str) -> None:
    """Copy every layer of old_model into model by name; vocabulary axes through `maps`.

    maps: side -> (new ids, old ids) of the pieces shared by both vocabularies.
    A layer in only one model or a weight of another shape is a one-line ModelError.
    """
    new_layers = {layer.name: layer for layer in model.layers}
    old_layers = {layer.name: layer for layer in old_model.layers}
    if set(new_layers) != set(old_layers):
        only = sorted(set(new_layers) ^ set(old_layers))
        raise ModelError(
            f"{source}: layers {only} are not in both models "
            "(model.bidirectional, attention, encoder_layers, decoder_layers, "
            "tie_embeddings and share_embeddings must match the earlier model)"
        )
    vocab_axes = model.vocab_axes
    for name, layer in new_layers.items():
        side, axis = vocab_axes.get(name, (None, None))
        _copy_layer(layer, old_layers[name], axis, maps.get(side), source)


def _copy_layer(layer, old_layer, axis: int | None, ids, source: str) -> None:
    """Copy one layer's weights; along `axis` (if any) only rows ids[1] into rows ids[0]."""
    new_values, old_values = layer.get_weights(), old_layer.get_weights()
    if len(new_values) != len(old_values):
        raise ModelError(
            f"{source}: layer {layer.name!r} has {len(old_values)} weights there but "
            f"{len(new_values)} here (model params must match the earlier model)"
        )
    values = []
    for var, new, old in zip(layer.weights, new_values, old_values, strict=True):
        if _fixed_shape(new, axis) != _fixed_shape(old, axis):
            raise ModelError(
                f"{source}: layer {layer.name!r} weight {var.path.partition('/')[2]!r} has "
                f"shape {old.shape} there but {new.shape} here "
                "(model.units, embedding_dim and cell must match the earlier model)"
            )
        values.append(old if axis is None else _mapped(new, old, axis, ids))
    layer.set_weights(values)


def _fixed_shape(value: np.ndarray, axis: int | None) -> tuple:
    """The shape without the vocabulary axis (which may differ between the models)."""
    shape = list(value.shape)
    if axis is not None:
        del shape[axis]
    return tuple(shape)


def _mapped(new: np.ndarray, old: np.ndarray, axis: int, ids) -> np.ndarray:
    """`new` with its slices new_ids along axis replaced by old's slices old_ids."""
    new_ids, old_ids = ids
    out = np.moveaxis(new.copy(), axis, 0)  # a view of the copy: writes go through
    out[new_ids] = np.moveaxis(old, axis, 0)[old_ids]
    return np.moveaxis(out, 0, axis)


# --- model.src_embeddings / model.tgt_embeddings ------------------------------------------


def load_embeddings(model, side: str, path: Path, sp, dim: int) -> tuple[dict, list[int]]:
    """Set the `side` embedding rows of the pieces a word2vec text file lists.

    Returns the record for config.json and the ids of the rows set.
    """
    vocab = {piece: i for i, piece in enumerate(pieces(sp))}
    ids, vectors, total = read_word2vec(path, vocab, dim, f"model.{side}_embeddings")
    layer = getattr(model, f"{side}_embedding")
    table = layer.get_weights()[0]  # vocab x dim
    if ids:
        table[ids] = vectors
    layer.set_weights([table])
    log.info(
        "%s embeddings: %d of %d pieces initialised from %s (%d vectors of other tokens ignored)",
        side,
        len(ids),
        len(vocab),
        path,
        total - len(ids),
    )
    return {"path": str(path), "sha256": sha256_file(path), "pieces": len(ids)}, ids


def read_word2vec(path: Path, vocab: dict[str, int], dim: int, key: str):
    """The vectors of vocab's pieces in a word2vec text file (gzipped if it ends in .gz).

    The format: a header line `count dimension`, then `piece v1 ... vD` per line,
    fields separated by single spaces. A dimension other than `dim` is a
    ConfigError; an unreadable or malformed file a DataError naming file:line.

    Returns (ids, vectors: len(ids) x dim float32, number of vectors in the file).
    """
    ids, rows, seen = [], [], {}
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as lines:
            count, file_dim = _header(path, next(lines, b""))
            if file_dim != dim:
                raise ConfigError(
                    f"{key}: {path} has {file_dim}-dimensional vectors "
                    f"but model.embedding_dim is {dim}"
                )
            for lineno, raw in enumerate(lines, start=2):
                piece, vector = _vector_line(path, lineno, raw, dim)
                if piece in seen:
                    raise DataError(f"{path}:{lineno}: {piece!r} repeats line {seen[piece]}")
                seen[piece] = lineno
                if piece in vocab:
                    ids.append(vocab[piece])
                    rows.append(vector)
    except FileNotFoundError:
        raise DataError(f"{path}: {key} file not found") from None
    except (OSError, EOFError) as err:  # gzip: not gzipped, corrupt or truncated
        raise DataError(f"{path}: cannot read ({first_line(err)})") from None
    if len(seen) != count:
        raise DataError(f"{path}: the header announces {count} vectors, the file has {len(seen)}")
    return ids, np.array(rows, dtype=np.float32).reshape(len(ids), dim), len(seen)


def _decode(path: Path, lineno: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8").rstrip()
    except UnicodeDecodeError:
        raise DataError(
            f"{path}:{lineno}: not valid UTF-8 (only the word2vec text format is read)"
        ) from None


def _header(path: Path, raw: bytes) -> tuple[int, int]:
    """The `count dimension` header line."""
    fields = _decode(path, 1, raw).split(" ")
    if len(fields) != 2 or not all(f.isdigit() and int(f) > 0 for f in fields):
        raise DataError(
            f"{path}:1: expected the word2vec header 'count dimension', got {' '.join(fields)!r}"
        )
    return int(fields[0]), int(fields[1])


def _vector_line(path: Path, lineno: int, raw: bytes, dim: int) -> tuple[str, np.ndarray]:
    """One `piece v1 ... vD` line."""
    fields = _decode(path, lineno, raw).split(" ")
    if len(fields) != dim + 1 or not fields[0]:
        raise DataError(
            f"{path}:{lineno}: expected a piece and {dim} numbers, found {len(fields)} fields"
        )
    try:
        vector = np.array(fields[1:], dtype=np.float32)
    except ValueError as err:
        raise DataError(f"{path}:{lineno}: not a number ({first_line(err)})") from None
    if not np.isfinite(vector).all():
        raise DataError(f"{path}:{lineno}: the vector of {fields[0]!r} is not finite")
    return fields[0], vector


# --- train.freeze ---------------------------------------------------------------------------


def part_layers(model, part: str) -> list:
    """The layers of a train.freeze part, as the network declares them (freeze_layers)."""
    return [model.get_layer(name) for name in model.freeze_layers(part)]


def freeze(model, parts: tuple[str, ...]) -> None:
    """Mark the layers of `parts` not trainable (before compile) and log what still trains."""
    for part in parts:
        for layer in part_layers(model, part):
            layer.trainable = False
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    log.info(
        "trainable parameters: %s of %s (frozen: %s)",
        f"{trainable:,}",
        f"{model.count_params():,}",
        ", ".join(parts) or "nothing",
    )


def _warn_untrained(model, parts, loaded: dict[str, set], from_model: bool) -> None:
    """Warn about frozen weights that no earlier model or vectors provided: they stay random."""
    vocab_axes = model.vocab_axes
    for layer in (layer for part in parts for layer in part_layers(model, part)):
        name = layer.name
        if name in vocab_axes:
            rows = layer.weights[0].shape[vocab_axes[name][1]]
            if rows > len(loaded[name]):
                log.warning(
                    "train.freeze: %d of %d rows of %s stay random (pieces that neither "
                    "train.init_from nor pretrained vectors provide)",
                    rows - len(loaded[name]),
                    rows,
                    name,
                )
        elif not from_model and layer.weights:
            log.warning("train.freeze: %s stays random (no train.init_from)", name)
