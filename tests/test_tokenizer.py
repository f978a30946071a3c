import json

import pytest
from conftest import EN_US, TOKENIZER_V010, need_shared

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.tokenizer import Tokenizer, byte_to_char_table


@pytest.fixture(scope="module")
def tok():
    need_shared()
    return Tokenizer(TOKENIZER_V010)


def test_parity_fixture_pieces_and_ids_all_match(tok):
    fixture = json.loads((TOKENIZER_V010.parent / "tokenizer-parity-v0.1.0.json").read_text())
    assert len(fixture) == 17
    mismatches = []
    for case in fixture:
        enc = tok.encode(case["raw"])
        if list(enc.pieces) != case["pieces"] or list(enc.ids) != case["ids"]:
            mismatches.append(case["raw"])
    assert mismatches == []


def test_word_piece_span_includes_preceding_whitespace(tok):
    raw = "1600 Pennsylvania Avenue"
    enc = tok.encode(raw)
    k = enc.pieces.index("▁Pennsylvania")
    assert (enc.begin[k], enc.end[k]) == (4, 17)
    assert raw[enc.begin[k] : enc.end[k]] == " Pennsylvania"
    assert enc.begin[0] == 0  # leading whitespace of the string is skipped


def test_runs_of_spaces_are_absorbed_into_the_next_piece(tok):
    raw = "  Main   St"
    enc = tok.encode(raw)
    k = enc.pieces.index("▁St")
    assert (enc.begin[k], enc.end[k]) == (6, 11)


def test_byte_fallback_pieces_are_zero_width_except_the_last(tok):
    enc = tok.encode("a京")
    byte_pieces = [(p, b, e) for p, b, e in zip(enc.pieces, enc.begin, enc.end, strict=True) if p.startswith("<0x")]
    assert [p for p, _, _ in byte_pieces] == ["<0xE4>", "<0xBA>", "<0xAC>"]
    assert [(b, e) for _, b, e in byte_pieces] == [(1, 1), (1, 1), (1, 2)]


def test_offsets_are_chars_not_bytes_after_non_ascii(tok):
    raw = "Café Régal, Paris"
    enc = tok.encode(raw)
    k = enc.pieces.index("▁Paris")
    assert raw[enc.begin[k] : enc.end[k]].strip() == "Paris"


def test_byte_table_maps_every_byte_to_its_char_and_end_to_len():
    raw = "é京a"
    table = byte_to_char_table(raw)
    assert table == [0, 0, 1, 1, 1, 2, 3]


def test_real_en_us_tokenizer_loads():
    need_shared()
    t = Tokenizer(EN_US / "tokenizer.model")
    assert t.vocab_size == 73143


def test_corrupt_tokenizer_is_a_clear_error(tmp_path):
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(MwevalError, match="not a SentencePiece model"):
        Tokenizer(bad)


def test_a_sentencepiece_that_gives_code_point_offsets_is_refused():
    """What 0.2.0/0.2.1 did (upstream-formats.md §3.1): ends in code points. Simulated, since those
    releases cannot be installed beside the pinned one; the real library passes the same probe."""
    from types import SimpleNamespace

    from mailwoman_eval.tokenizer import check_byte_offsets

    need_shared()
    real = Tokenizer(TOKENIZER_V010).sp
    check_byte_offsets(real, TOKENIZER_V010)  # the installed sentencepiece: byte offsets

    class CodePoints:
        def encode(self, text, out_type):
            proto = real.encode(text, out_type=out_type)
            table = [i for i, ch in enumerate(text) for _ in ch.encode("utf-8")] + [len(text)]
            return SimpleNamespace(pieces=[SimpleNamespace(begin=table[p.begin], end=table[p.end]) for p in proto.pieces])

    with pytest.raises(MwevalError, match="not UTF-8 bytes"):
        check_byte_offsets(CodePoints(), TOKENIZER_V010)


def test_the_recorded_sha256_is_of_the_model_loaded_when_the_file_is_rewritten_meanwhile(tmp_path, monkeypatch):
    """The tokenizer file is read once: a file rewritten after sentencepiece loaded it is not what
    the run records (it hashed the path again after loading)."""
    import hashlib
    import shutil

    import sentencepiece as spm

    need_shared()
    path = tmp_path / "tokenizer.model"
    shutil.copy(TOKENIZER_V010, path)
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    for name in ("Load", "LoadFromSerializedProto"):
        real = getattr(spm.SentencePieceProcessor, name)

        def loaded_then_rewritten(self, *args, _real=real, **kwargs):
            ok = _real(self, *args, **kwargs)
            shutil.copy(EN_US / "tokenizer.model", path)
            return ok

        monkeypatch.setattr(spm.SentencePieceProcessor, name, loaded_then_rewritten)
    tok = Tokenizer(path)
    assert tok.sha256 == want != hashlib.sha256(path.read_bytes()).hexdigest()
    assert tok.vocab_size == Tokenizer(TOKENIZER_V010).vocab_size != Tokenizer(EN_US / "tokenizer.model").vocab_size
