import gzip
import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from nmtpipe.config import DataConfig
from nmtpipe.corpus.download import download_corpus
from nmtpipe.errors import ConfigError, DataError
from tests.conftest import sample_pairs


def url_config(path, **kwargs) -> DataConfig:
    return DataConfig(source="url", url=str(path), **kwargs)


def read_out(out: Path) -> list[tuple[str, str]]:
    src = (out / "src.txt").read_text(encoding="utf-8").splitlines()
    tgt = (out / "tgt.txt").read_text(encoding="utf-8").splitlines()
    return list(zip(src, tgt, strict=True))


def anki_zip(path: Path, lines: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("spa-eng/_about.txt", "About this file\n")
        archive.writestr("spa-eng/spa.txt", "".join(line + "\n" for line in lines))
    return path


def test_sample_source_writes_aligned_files_and_manifest(tmp_path):
    manifest = download_corpus(DataConfig(), tmp_path / "raw")
    pairs = read_out(tmp_path / "raw")
    assert pairs == sample_pairs()
    assert manifest["pairs"] == len(pairs) > 2000
    on_disk = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert on_disk == manifest
    assert (
        on_disk["src_sha256"] == hashlib.sha256((tmp_path / "raw/src.txt").read_bytes()).hexdigest()
    )


def test_anki_zip_with_attribution_and_reverse_direction(tmp_path):
    archive = anki_zip(
        tmp_path / "spa-eng.zip",
        [
            "Go.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM)",
            "Thank you.\tGracias.\tCC-BY 2.0 (France) Attribution: tatoeba.org #1 (x)",
        ],
    )
    download_corpus(url_config(archive, src_lang="es", tgt_lang="en"), tmp_path / "raw")
    assert read_out(tmp_path / "raw") == [("Ve.", "Go."), ("Gracias.", "Thank you.")]


def test_anki_zip_columns_follow_the_pair_not_data_columns(tmp_path):
    """Another manythings archive (English-French) needs no data.columns: an Anki .zip is
    English, then the pair's other language. A pair without English cannot be one."""
    archive = anki_zip(tmp_path / "fra-eng.zip", ["Go.\tVa !\tCC-BY 2.0 (France) #1"])
    french = url_config(archive, tgt_lang="fr")  # data.columns stays [en, es]
    download_corpus(french, tmp_path / "en-fr")
    assert read_out(tmp_path / "en-fr") == [("Go.", "Va !")]
    download_corpus(url_config(archive, src_lang="fr", tgt_lang="en"), tmp_path / "fr-en")
    assert read_out(tmp_path / "fr-en") == [("Va !", "Go.")]
    with pytest.raises(ConfigError, match="English and one other language"):
        download_corpus(url_config(archive, src_lang="fr", tgt_lang="de"), tmp_path / "fr-de")
    assert not (tmp_path / "fr-de").exists()
    with pytest.raises(ConfigError, match="must name both"):  # a TSV still needs its columns
        url_config(tmp_path / "corpus.tsv", tgt_lang="fr")


def test_gzipped_tsv_with_bom_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "corpus.tsv.gz"
    path.write_bytes(gzip.compress("\ufeffHello.\tHola.\r\n\r\nBye.\tAdiós.\r\n".encode()))
    manifest = download_corpus(url_config(path), tmp_path / "raw")
    assert read_out(tmp_path / "raw") == [("Hello.", "Hola."), ("Bye.", "Adiós.")]
    assert manifest["fixed"] == {"blank_lines": 1, "bom": 1, "crlf_lines": 3}


def test_two_aligned_files_by_language_placeholder(tmp_path):
    (tmp_path / "corpus.en").write_text("Hello.\nGood night.\n")
    (tmp_path / "corpus.es").write_text("Hola.\nBuenas noches.\n")
    download_corpus(url_config(tmp_path / "corpus.{lang}"), tmp_path / "raw")
    assert read_out(tmp_path / "raw") == [("Hello.", "Hola."), ("Good night.", "Buenas noches.")]


def test_sha256_is_checked(tiny_tsv, tmp_path):
    good = hashlib.sha256(tiny_tsv.read_bytes()).hexdigest()
    download_corpus(url_config(tiny_tsv, sha256=good), tmp_path / "ok")
    with pytest.raises(DataError, match="sha256 mismatch"):
        download_corpus(url_config(tiny_tsv, sha256="0" * 64), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def bad_inputs(tmp: Path):
    """(name, path or url, expected message) for inputs that must be refused."""
    (tmp / "tab.tsv").write_text("One.\tUno.\nTwo without tab\n")
    (tmp / "extra.tsv").write_text("One.\tUno.\nTwo.\tDos.\tx\tmore\n")
    (tmp / "latin1.tsv").write_bytes("One.\tUno.\nCafé.\tCafé.\n".encode("latin-1"))
    (tmp / "mis.en").write_text("a\nb\nc\n")
    (tmp / "mis.es").write_text("a\nb\n")
    (tmp / "corrupt.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    anki_zip(tmp / "nomember.zip", [])
    with zipfile.ZipFile(tmp / "nomember.zip", "w") as archive:
        archive.writestr("_about.txt", "x")
    packed = gzip.compress(b"".join(b"Line %d.\tL\xc3\xadnea %d.\n" % (i, i) for i in range(3000)))
    (tmp / "trunc.tsv.gz").write_bytes(packed[: len(packed) // 2])
    (tmp / "empty.tsv").write_text("")
    return [
        ("missing file", tmp / "nope.tsv", "nope.tsv: file not found"),
        ("missing tab", tmp / "tab.tsv", "tab.tsv:2: expected 2 tab-separated fields, found 1"),
        ("extra tabs", tmp / "extra.tsv", "extra.tsv:2: expected 2 tab-separated fields, found 4"),
        ("not utf-8", tmp / "latin1.tsv", "latin1.tsv:2: not valid UTF-8"),
        ("misaligned", tmp / "mis.{lang}", "mis.en has 3 lines but"),
        ("corrupt zip", tmp / "corrupt.zip", "corrupt.zip: not a valid zip archive"),
        ("zip without corpus", tmp / "nomember.zip", "expected one .txt/.tsv corpus member"),
        ("truncated gzip", tmp / "trunc.tsv.gz", "corrupt or truncated"),
        ("empty", tmp / "empty.tsv", "no sentence pairs found"),
        ("unreachable url", "http://127.0.0.1:9/corpus.zip", "cannot download"),
    ]


def test_bad_inputs_fail_with_one_line_and_no_output(tmp_path):
    for name, url, message in bad_inputs(tmp_path):
        out = tmp_path / "raw"
        with pytest.raises(DataError) as err:
            download_corpus(url_config(url), out)
        assert message in str(err.value), name
        assert "\n" not in str(err.value), name
        assert not out.exists(), name
        assert not list(tmp_path.glob(".raw.tmp-*")), name


def test_failed_download_keeps_previous_output(tiny_tsv, tmp_path):
    out = tmp_path / "raw"
    download_corpus(url_config(tiny_tsv), out)
    before = (out / "src.txt").read_bytes()
    with pytest.raises(DataError):
        download_corpus(url_config(tmp_path / "missing.tsv"), out)
    assert (out / "src.txt").read_bytes() == before


def test_bad_source_settings():
    with pytest.raises(ConfigError, match="unsupported scheme 'ftp'"):
        download_corpus(url_config("ftp://example.org/x.zip"), Path("/nonexistent/raw"))
    with pytest.raises(ConfigError, match="'sample' is English-Spanish"):
        download_corpus(DataConfig(tgt_lang="fr", columns=("en", "fr")), Path("/nonexistent/raw"))


def test_direction_is_a_param(tmp_path):
    download_corpus(DataConfig(src_lang="es", tgt_lang="en"), tmp_path / "raw")
    assert read_out(tmp_path / "raw")[:3] == [(es, en) for en, es in sample_pairs(3)]
