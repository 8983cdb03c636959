"""The LibreTranslate API's requests, read and checked: fields in, a `TranslateRequest` out.

A bad request is an `ApiError` (an HTTP status and one sentence), never a traceback:
the server answers it as `{"error": "..."}` and goes on serving. The rules follow
LibreTranslate's `/translate`: `q` a string or a list of strings, `source` and
`target` language codes (`source: auto` means the model's own source language; no
language is detected), `format: text`, `api_key` where the server has one;
`alternatives` and nmtpipe's own `beam_size` are optional extras.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_BEAM, MAX_ALTERNATIVES = 16, 8
LANGUAGE_NAMES = {
    "ar": "Arabic", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "eu": "Basque", "fi": "Finnish",
    "fr": "French", "gl": "Galician", "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "no": "Norwegian",
    "pl": "Polish", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sv": "Swedish",
    "tr": "Turkish", "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip


class ApiError(Exception):
    """A request the server refuses: its HTTP status and the reason, in one sentence."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server (`nmtpipe serve`'s options)."""

    char_limit: int = 10_000  # characters per request, all texts together
    batch_limit: int = 128  # texts per request
    body_bytes: int = 1 << 20  # request body size
    timeout_s: float = 30.0  # a request's translation, queueing included
    api_key: str | None = None


@dataclass(frozen=True)
class TranslateRequest:
    texts: list[str]
    as_list: bool  # q was a list: answer with lists
    beam_size: int | None  # None: the server's
    alternatives: int


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def parse_body(body: bytes, content_type: str) -> dict:
    """The request's fields, from JSON or a urlencoded form (a repeated form field, such
    as several q, becomes a list)."""
    media = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "The request body is not valid UTF-8.") from None
    if media == "application/x-www-form-urlencoded":
        form = parse_qs(text, keep_blank_values=True)
        return {key: values if len(values) > 1 else values[0] for key, values in form.items()}
    if media.startswith("multipart/"):
        raise ApiError(415, "Send the request as JSON or as a urlencoded form, not multipart.")
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as err:
        raise ApiError(400, f"The request body is not valid JSON ({err.msg}).") from None
    if not isinstance(fields, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return fields


def check_key(fields: dict, limits: Limits) -> None:
    if limits.api_key is not None and fields.get("api_key") != limits.api_key:
        raise ApiError(403, "Invalid API key.")


def check_pair(fields: dict, pair: tuple[str, str]) -> None:
    """source and target must be the model's pair (source "auto" is the model's source)."""
    for name in ("source", "target"):
        if name not in fields:
            raise ApiError(400, f"Invalid request: missing {name} parameter.")
        if not isinstance(fields[name], str):
            raise ApiError(400, f"Invalid request: {name} must be a language code.")
    source = pair[0] if fields["source"] == "auto" else fields["source"]
    if (source, fields["target"]) != pair:
        raise ApiError(
            400,
            f"This server translates {pair[0]} to {pair[1]}, "
            f"not {fields['source']} to {fields['target']}.",
        )


def translate_request(fields: dict, pair: tuple[str, str], limits: Limits) -> TranslateRequest:
    """A checked /translate request."""
    check_key(fields, limits)
    texts, as_list = _texts(fields)
    check_pair(fields, pair)
    fmt = fields.get("format", "text")
    if fmt != "text":
        raise ApiError(400, f"Format {fmt!r} is not supported: this server translates text.")
    if len(texts) > limits.batch_limit:
        raise ApiError(
            400,
            f"Invalid request: {len(texts)} texts exceed the batch limit ({limits.batch_limit}).",
        )
    chars = sum(map(len, texts))
    if chars > limits.char_limit:
        raise ApiError(
            400, f"Invalid request: {chars} characters exceed the text limit ({limits.char_limit})."
        )
    beam = None if fields.get("beam_size") is None else _integer(fields, "beam_size", 1, MAX_BEAM)
    alternatives = 0  # absent, or blank in a form
    if fields.get("alternatives"):
        alternatives = _integer(fields, "alternatives", 0, MAX_ALTERNATIVES)
    return TranslateRequest(texts, as_list, beam, alternatives)


def attention_request(fields: dict, limits: Limits) -> str:
    """The one sentence of an /attention request (the page's heat map)."""
    check_key(fields, limits)
    texts, as_list = _texts(fields)
    if as_list or not texts[0].strip() or "\n" in texts[0].strip():
        raise ApiError(400, "Invalid request: q must be one non-empty line of text.")
    if len(texts[0]) > limits.char_limit:
        raise ApiError(400, f"Invalid request: q exceeds the text limit ({limits.char_limit}).")
    return texts[0]


def _texts(fields: dict) -> tuple[list[str], bool]:
    if "q" not in fields:
        raise ApiError(400, "Invalid request: missing q parameter.")
    q = fields["q"]
    if isinstance(q, str):
        return [q], False
    if isinstance(q, list) and all(isinstance(text, str) for text in q):
        return q, True
    raise ApiError(400, "Invalid request: q must be a string or a list of strings.")


def _integer(fields: dict, name: str, low: int, high: int) -> int:
    value = fields[name]
    if isinstance(value, str) and value.strip().isdigit():  # form fields are strings
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"Invalid request: {name} must be an integer from {low} to {high}.")
    return value
