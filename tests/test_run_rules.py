"""The run artifact and the tokenizer, rule by rule (design.md "The run artifact — the one seam" and
Decisions "Outputs"; README "The run directory", "Compare and gate"; upstream-formats.md §3 and §3.1):
pieces with Python char spans from UTF-8 byte offsets (zero-width byte-fallback pieces, astral chars,
the offset probe at load), the run directory's bytes, the run cache (where it lives, its key, what is
a hit and what is removed), the errors a damaged run.json / predictions.jsonl / scores JSON gets
(naming the file, and the line), and how a scores baseline is paired with its candidate by row
identity (file, raw and gold), not by line number.

Runs are hand-built (tests/runfactory.py) or written here through `write_run`; the tokenizer rules
use the real upstream v0.1.0 tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import TOKENIZER_V010, error_text, need_shared
from runfactory import make_run, save_run

from mailwoman_eval import run as run_module
from mailwoman_eval.run import (
    PRED_FILE,
    RUN_FILE,
    SCHEMA,
    cache_key,
    cache_root,
    cached_run,
    code_sha256,
    git_commit,
    load_run,
    load_run_or_scores,
    load_scores,
    loudest_first,
    row_digest,
    row_identity,
    run_inputs,
    store_in_cache,
    write_run,
)
from mailwoman_eval.tokenizer import Encoding, Tokenizer, byte_to_char_table


@pytest.fixture(scope="module")
def tok():
    need_shared()
    return Tokenizer(TOKENIZER_V010)


def spans(enc: Encoding) -> list[tuple[str, int, int]]:
    return list(zip(enc.pieces, enc.begin, enc.end, strict=True))


# ---- tokenizer: byte offsets -> char offsets (§3, §3.1) -------------------------------------------


def test_byte_table_of_ascii_is_one_entry_per_char_plus_the_end():
    """table[b] = the char holding byte b, table[len(bytes)] = len(raw): for ASCII, the identity."""
    assert byte_to_char_table("Main St") == [0, 1, 2, 3, 4, 5, 6, 7]
    assert byte_to_char_table("") == [0]


def test_byte_table_maps_all_four_bytes_of_an_astral_char_to_it():
    """§3: every byte of a multibyte char maps to that char's index (U+1F600 is 4 bytes, 1 char)."""
    assert byte_to_char_table("a😀b") == [0, 1, 1, 1, 1, 2, 3]


def test_an_astral_char_falls_back_to_four_byte_pieces_the_first_three_zero_width(tok):
    """§3 byte fallback: the first n-1 byte pieces of an unknown char get (c, c), the last (c, c+1);
    the pieces after it are in chars, not bytes."""
    enc = tok.encode("a😀b")
    assert spans(enc) == [("▁a", 0, 1), ("<0xF0>", 1, 1), ("<0x9F>", 1, 1), ("<0x98>", 1, 1), ("<0x80>", 1, 2), ("b", 2, 3)]
    assert enc.ids == (411, 244, 163, 156, 132, 665)


def test_a_word_initial_unknown_char_gives_a_bare_word_piece_with_an_empty_span(tok):
    """§3: a bare `▁` with an empty span, then the byte pieces; `▁Street` includes the space before it."""
    assert spans(tok.encode("京都 Street")) == [
        ("▁", 0, 0), ("<0xE4>", 0, 0), ("<0xBA>", 0, 0), ("<0xAC>", 0, 1),
        ("<0xE9>", 1, 1), ("<0x83>", 1, 1), ("<0xBD>", 1, 2), ("▁Street", 2, 9),
    ]


def test_a_char_nfkc_changes_gives_an_empty_span(tok):
    """§3: `ﬁ` -> `▁f`(0,0) + `ive`(0,3)."""
    assert spans(tok.encode("ﬁve")) == [("▁f", 0, 0), ("ive", 0, 3)]


def test_encode_many_gives_what_encode_gives_and_blank_text_has_no_pieces(tok):
    """No special tokens are added (§3): an empty or all-space string has no pieces at all."""
    raws = ["a😀b", "", "   ", " x", "Straße 5", "x\u2028y"]
    assert tok.encode_many(raws) == [tok.encode(r) for r in raws]
    assert tok.encode("") == tok.encode("   ") == Encoding((), (), (), ())
    assert spans(tok.encode("Straße 5")) == [("▁St", 0, 2), ("ra", 2, 4), ("ß", 4, 5), ("e", 5, 6), ("▁5", 6, 8)]


def test_an_encoding_takes_zero_width_spans_and_refuses_the_first_bad_one():
    """Zero-width spans are what byte fallback gives (valid); a span ending before it begins, or
    beginning before 0, is refused naming the first such span."""
    enc = Encoding(("<0xE4>", "<0xBA>", "<0xAC>"), (232, 190, 176), (0, 0, 0), (0, 0, 1))
    assert (enc.begin, enc.end, len(enc)) == ((0, 0, 0), (0, 0, 1), 3)
    with pytest.raises(ValueError) as e:
        Encoding(("a", "b", "c"), (1, 2, 3), (0, 0, 3), (0, 2, 2))
    assert str(e.value) == "bad piece span (3, 2)"
    with pytest.raises(ValueError) as e:
        Encoding(("a", "b"), (1, 2), (-1, 2), (0, 3))
    assert str(e.value) == "bad piece span (-1, 0)"
    with pytest.raises(ValueError) as e:
        Encoding(("a",), (1, 2), (0,), (1,))
    assert str(e.value) == "pieces, ids and spans differ in length"
    assert len(Encoding((), (), (), ())) == 0


def test_the_v010_tokenizer_is_the_upstream_one(tok):
    """§3: vocab 16000, pad id 0, and the sha256 upstream-formats.md gives for the in-repo copy."""
    assert tok.vocab_size == 16000
    assert tok.pad_id == 0
    assert tok.sha256 == hashlib.sha256(TOKENIZER_V010.read_bytes()).hexdigest()
    assert tok.sha256.startswith("82d126743d240c38") and tok.sha256.endswith("c1a1")


def test_a_tokenizer_path_that_is_no_model_file_is_named_in_the_error(tmp_path):
    """A missing path, a directory, a FIFO (reading it would block forever) and an empty file."""
    assert error_text(Tokenizer, tmp_path / "nope.model") == f"{tmp_path / 'nope.model'}: tokenizer model not found"
    assert error_text(Tokenizer, tmp_path) == f"{tmp_path}: not a regular file (a directory)"
    os.mkfifo(tmp_path / "fifo.model")
    assert error_text(Tokenizer, tmp_path / "fifo.model") == f"{tmp_path / 'fifo.model'}: not a regular file (a FIFO)"
    (tmp_path / "empty.model").write_bytes(b"")
    assert error_text(Tokenizer, tmp_path / "empty.model") == f"{tmp_path / 'empty.model'}: not a SentencePiece model (INTERNAL: unk is not defined.)"


def test_loading_probes_the_offsets_and_refuses_code_points(monkeypatch):
    """§3.1: sentencepiece 0.2.0/0.2.1 gave code points; every span after the first non-ASCII char
    shifted silently. The probe runs when a tokenizer is loaded (simulated offsets: those releases
    cannot be installed beside the pinned one)."""
    import sentencepiece as spm

    need_shared()
    real = spm.SentencePieceProcessor.encode

    def code_points(self, text, *args, **kwargs):
        proto = real(self, text, *args, **kwargs)
        if not isinstance(text, str):
            return proto
        table = [i for i, ch in enumerate(text) for _ in ch.encode("utf-8")] + [len(text)]
        return SimpleNamespace(pieces=[SimpleNamespace(begin=table[p.begin], end=table[p.end]) for p in proto.pieces])

    monkeypatch.setattr(spm.SentencePieceProcessor, "encode", code_points)
    assert error_text(Tokenizer, TOKENIZER_V010) == (
        f"{TOKENIZER_V010}: sentencepiece {spm.__version__} reports piece offsets that are not UTF-8 bytes "
        "(end 2 for 'aé'); install sentencepiece>=0.2.2")


# ---- the run directory's bytes ---------------------------------------------------------------------

TAGS = ["locality", "postcode"]
ROWS = [
    ("Paris 75008", {"postcode": "75008", "locality": "Paris"}, {"postcode": "75008"}),
    ("Lyon 69001", {"postcode": "69001"}, {"postcode": "69001", "locality": "Lyon"}),
    ("Москва 101000", {"locality": "Москва"}, {"locality": "Моск"}, "adversarial.jsonl"),
]


def hand_run(rows=ROWS, **kw):
    run = make_run(rows, TAGS, "runtime", **kw)
    run.meta.update(mweval_version="test", tokenizer={"sha256": "t" * 64}, metrics={"views": {"all": {"micro_f1": 0.5}}, "calibration": {}})
    run.meta["checkpoint"].update(sha256="c" * 64, path="/ckpt", kind="pytorch", found_in="--ckpt")
    run.meta["golden"].update(files={"us.jsonl": "f" * 64}, rows=len(rows), path="/golden")
    return run


def test_write_run_writes_compact_prediction_lines_and_an_indented_run_json_tied_by_sha256(tmp_path):
    """predictions.jsonl: one compact UTF-8 JSON object a line; run.json: indent 2, non-ASCII kept,
    key order kept, ending in a newline, with `predictions_sha256` of the predictions' bytes (last).
    The caller's dict is not changed; what was written is returned."""
    meta = {"schema": SCHEMA, "golden": {"name": "Köln"}, "a": 1}
    preds = [{"id": "k.jsonl:1", "raw": "Köln", "conf": [0.5]}, {"id": "k.jsonl:2", "raw": "x"}]
    written = write_run(tmp_path / "run", meta, preds)
    pred_bytes = (tmp_path / "run" / PRED_FILE).read_bytes()
    assert pred_bytes == '{"id":"k.jsonl:1","raw":"Köln","conf":[0.5]}\n{"id":"k.jsonl:2","raw":"x"}\n'.encode()
    sha = hashlib.sha256(pred_bytes).hexdigest()
    assert meta == {"schema": SCHEMA, "golden": {"name": "Köln"}, "a": 1}
    assert written == {**meta, "predictions_sha256": sha}
    assert (tmp_path / "run" / RUN_FILE).read_text(encoding="utf-8") == (
        '{\n  "schema": "mweval.run/1",\n  "golden": {\n    "name": "Köln"\n  },\n  "a": 1,\n'
        f'  "predictions_sha256": "{sha}"\n}}\n')
    assert write_run(tmp_path / "empty", meta, [])["predictions_sha256"] == hashlib.sha256(b"").hexdigest()


def test_write_run_replaces_an_earlier_run_and_refuses_a_directory_of_other_files_unless_forced(tmp_path):
    """design.md Outputs: a directory holding an mweval run is replaced; a non-empty one that
    does not is refused unless forced, and is then left as it was."""
    out = tmp_path / "run"
    write_run(out, {"schema": SCHEMA, "n": 1}, [{"id": "a"}])
    write_run(out, {"schema": SCHEMA, "n": 2}, [{"id": "b"}])
    assert json.loads((out / RUN_FILE).read_text())["n"] == 2 and (out / PRED_FILE).read_text() == '{"id":"b"}\n'
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert error_text(write_run, mine, {"schema": SCHEMA}, []) == (
        f"{mine}: output directory is not empty and holds no mweval run.json; refusing to write (use --force)")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    write_run(mine, {"schema": SCHEMA}, [], force=True)
    assert (mine / RUN_FILE).is_file()


def test_loudest_first_puts_out_of_distribution_warnings_first_and_keeps_the_order_otherwise():
    """Every output shows the zero-fed-inputs warning loudly: first; the others keep their order."""
    ws = ["b: second", "OUT OF DISTRIBUTION: x", "a: first", "OUT OF DISTRIBUTION: y"]
    assert loudest_first(ws) == ["OUT OF DISTRIBUTION: x", "OUT OF DISTRIBUTION: y", "b: second", "a: first"]
    assert loudest_first([]) == []


# ---- the run cache ---------------------------------------------------------------------------------


def test_the_cache_lives_in_mweval_cache_else_xdg_cache_home_else_the_home_cache(monkeypatch, tmp_path):
    """README: `MWEVAL_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/mweval` (an empty variable is unset)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MWEVAL_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.setenv("MWEVAL_CACHE", "")
    assert cache_root() == tmp_path / "xdg" / "mweval"
    monkeypatch.delenv("MWEVAL_CACHE")
    assert cache_root() == tmp_path / "xdg" / "mweval"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_root() == tmp_path / "home" / ".cache" / "mweval"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == tmp_path / "home" / ".cache" / "mweval"


def test_the_cache_key_names_every_input_and_the_code_that_turns_them_into_numbers(monkeypatch):
    """32 hex chars of a sha256 over the parts (in any order), mweval's version and its source files."""
    parts = {"checkpoint": "c" * 64, "tokenizer": "t" * 64, "golden": [["a.jsonl", "g" * 64]], "profile": "runtime",
             "padding": 128, "engine": None}
    key = cache_key(parts)
    assert len(key) == 32 and int(key, 16) >= 0 and key == key.lower()
    assert cache_key(dict(reversed(parts.items()))) == key
    for change in ({"padding": None}, {"profile": "upstream-eval"}, {"golden": [["a.jsonl", "h" * 64]]}, {"labels": ["O"]}):
        assert cache_key({**parts, **change}) != key, change
    version = run_module.__version__
    monkeypatch.setattr(run_module, "__version__", "0.0.0-other")
    assert cache_key(parts) != key
    monkeypatch.setattr(run_module, "__version__", version)
    assert cache_key(parts) == key
    monkeypatch.setattr(run_module, "code_sha256", lambda: "0" * 64)
    assert cache_key(parts) != key


def test_the_code_hash_covers_the_packages_source_and_template_files_only(tmp_path, monkeypatch):
    """A cached run is served only to the code that wrote it: .py, .j2, .css and .js files, by
    path and content, anywhere in the package; other files (notes, caches) do not count."""
    pkg = tmp_path / "pkg"
    (pkg / "report" / "templates").mkdir(parents=True)
    files = {"run.py": "x = 1\n", "report/templates/r.html.j2": "<p>", "report/templates/r.css": "p{}", "report/templates/f.js": "1"}
    for name, text in files.items():
        (pkg / name).write_text(text)
    (pkg / "NOTES.md").write_text("notes")
    monkeypatch.setattr(run_module, "__file__", str(pkg / "run.py"))

    def digest():
        code_sha256.cache_clear()
        return code_sha256()

    try:
        base = digest()
        assert len(base) == 64
        (pkg / "NOTES.md").write_text("other notes")
        (pkg / "report" / "x.pyc").write_bytes(b"\0")
        assert digest() == base
        for name in files:
            before = (pkg / name).read_text()
            (pkg / name).write_text(before + " ")
            assert digest() != base, name
            (pkg / name).write_text(before)
            assert digest() == base
        (pkg / "run.py").rename(pkg / "other.py")  # the same bytes under another name
        assert digest() != base
    finally:
        code_sha256.cache_clear()


def cache_meta(key: str, n: int, **over) -> dict:
    meta = {"schema": SCHEMA, "profile": {"name": "runtime"}, "tags": ["postcode"], "golden": {"sha256": "g" * 64},
            "checkpoint": {"name": "c", "sha256": "c" * 64}, "decode": {}, "tokenizer": {"sha256": "t" * 64},
            "metrics": {}, "counts": {"entries": n}, "timings": {"cache": "miss", "cache_key": key}}
    meta.update(over)
    return meta


PRED = {"id": "g.jsonl:1", "file": "g.jsonl", "raw": "75008", "gold": {"postcode": "75008"},
        "pred": {"postcode": {"value": "75008"}}, "adversarial": False, "non_latin": False,
        "labels": ["B-postcode"], "conf": [0.9], "amax_conf": [0.9]}
EXPECT = {"checkpoint.sha256": "c" * 64, "tokenizer.sha256": "t" * 64, "golden.sha256": "g" * 64}


def test_a_cached_run_is_served_only_when_it_is_this_keys_run_of_these_inputs(tmp_path):
    """cached_run: the entry records the key and the checkpoint/tokenizer/golden sha256s asked for;
    an entry that does not is removed and is a miss; no entry is a miss."""
    key = "a" * 32
    entry = cache_root() / "runs" / key
    assert cached_run(key, EXPECT) is None and not entry.exists()
    write_run(tmp_path / "out", cache_meta(key, 1), [PRED], cache_key=key)
    hit = cached_run(key, EXPECT)
    assert hit is not None and hit.path == entry and hit.predictions == [PRED] and hit.meta["timings"]["cache_key"] == key
    for wrong in ({"tokenizer.sha256": "u" * 64}, {"golden.sha256": "h" * 64}, {"checkpoint.sha256": None}):
        write_run(tmp_path / "out", cache_meta(key, 1), [PRED], force=True, cache_key=key)
        assert cached_run(key, {**EXPECT, **wrong}) is None, wrong
        assert not entry.exists()
    # a run stored under another key (the race of two evals into one --out)
    write_run(tmp_path / "out", cache_meta("b" * 32, 1), [PRED], force=True, cache_key=key)
    assert cached_run(key, EXPECT) is None and not entry.exists()


def test_an_unsound_cache_entry_is_removed_and_a_miss(tmp_path):
    """Without its predictions hash, a count that disagrees, or a run.json that does not load."""
    key = "c" * 32
    entry = cache_root() / "runs" / key
    for meta, preds in ((cache_meta(key, 2), [PRED, PRED]), (cache_meta(key, 1), [PRED])):
        write_run(tmp_path / "out", meta, preds, force=True, cache_key=key)
        doc = json.loads((entry / RUN_FILE).read_text())
        doc.pop("predictions_sha256")
        doc["counts"]["entries"] = 1
        (entry / RUN_FILE).write_text(json.dumps(doc))
        assert cached_run(key, EXPECT) is None and not entry.exists()
    write_run(tmp_path / "out", cache_meta(key, 1, counts={}), [PRED], force=True, cache_key=key)
    assert cached_run(key, EXPECT) is None and not entry.exists()
    # counts that is not an object: load_run accepts it; the cache calls it unsound (it raised AttributeError)
    for counts in ([], None, 1):
        write_run(tmp_path / "out", cache_meta(key, 1, counts=counts), [PRED], force=True, cache_key=key)
        assert cached_run(key, EXPECT) is None and not entry.exists(), counts
    write_run(tmp_path / "out", cache_meta(key, 1), [PRED], force=True, cache_key=key)
    (entry / RUN_FILE).write_text("{")
    assert cached_run(key, EXPECT) is None and not entry.exists()


def test_storing_replaces_a_damaged_entry_and_leaves_a_fresh_staging_dir_alone(tmp_path):
    """An entry of this key that was not a hit is replaced in whole; a staging dir younger than an
    hour belongs to a store still writing and is kept (an older one is removed)."""
    runs = cache_root() / "runs"
    (runs / ("d" * 32)).mkdir(parents=True)
    (runs / ("d" * 32) / RUN_FILE).write_text("damaged")
    (runs / ("d" * 32) / "junk").write_text("x")
    live = runs / (".e" * 16 + ".abc")
    live.mkdir()
    old = runs / (".f" * 16 + ".abc")
    old.mkdir()
    os.utime(old, (time.time() - 3700, time.time() - 3700))
    assert store_in_cache("d" * 32, b"p\n", b"r\n") is None
    assert sorted(p.name for p in (runs / ("d" * 32)).iterdir()) == [PRED_FILE, RUN_FILE]
    assert (runs / ("d" * 32) / PRED_FILE).read_bytes() == b"p\n" and (runs / ("d" * 32) / RUN_FILE).read_bytes() == b"r\n"
    assert live.is_dir() and not old.exists()


def test_an_entry_another_process_renamed_in_first_is_kept_and_the_stage_removed(monkeypatch):
    """Two evals of one key at once: the second rename finds the first's entry (the same run) in
    place. That is no failure to report, and the second's staging directory is not left behind."""
    import errno

    runs = cache_root() / "runs"
    dest = runs / ("r" * 32)
    real = os.rename

    def other_process_first(src, dst):
        dest.mkdir()
        (dest / RUN_FILE).write_bytes(b"theirs\n")
        raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY), str(src), None, str(dst))

    monkeypatch.setattr(os, "rename", other_process_first)
    assert store_in_cache("r" * 32, b"p\n", b"mine\n") is None
    monkeypatch.setattr(os, "rename", real)
    assert sorted(p.name for p in runs.iterdir()) == ["r" * 32]
    assert (dest / RUN_FILE).read_bytes() == b"theirs\n"


def test_a_cache_that_cannot_be_written_is_said_and_the_run_is_still_written(tmp_path, monkeypatch):
    """Only a slower next run: the run directory is written, the reason goes to `log`."""
    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("MWEVAL_CACHE", str(tmp_path / "cachefile"))
    said = []
    write_run(tmp_path / "run", cache_meta("k" * 32, 1), [PRED], cache_key="k" * 32, log=said.append)
    assert said == [f"warning: the run cache at {tmp_path / 'cachefile'} cannot be written (Not a directory); "
                    "runs are not cached (set MWEVAL_CACHE, or pass --no-cache)"]
    assert load_run(tmp_path / "run").predictions == [PRED]
    said.clear()
    write_run(tmp_path / "run2", cache_meta("k" * 32, 1), [PRED], log=said.append)  # no key: no cache, nothing said
    assert said == [] and (tmp_path / "run2" / RUN_FILE).is_file()


# ---- git commit ------------------------------------------------------------------------------------


def test_no_commit_is_claimed_outside_mwevals_own_checkout(tmp_path, monkeypatch):
    """A package installed elsewhere, or inside another project's checkout, claims no commit."""
    root = run_module.REPO_ROOT
    monkeypatch.setattr(run_module, "REPO_ROOT", tmp_path)
    assert git_commit() is None
    monkeypatch.setattr(run_module, "REPO_ROOT", Path(__file__).resolve().parent)  # inside a checkout, not its top
    assert git_commit() is None
    monkeypatch.setattr(run_module, "REPO_ROOT", root)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert git_commit() is None


def test_the_commit_is_head_with_dirty_when_the_package_has_uncommitted_changes():
    """README: git commit ("-dirty" when tracked files of mailwoman_eval/ or pyproject.toml changed)."""
    root = run_module.REPO_ROOT

    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True, text=True, check=False)

    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        pytest.skip("mweval is not running from its git checkout")
    head = git("rev-parse", "HEAD").stdout.strip()
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "mailwoman_eval", "pyproject.toml").stdout.strip()
    assert git_commit() == head + ("-dirty" if dirty else "")
    assert len(head) == 40


def test_no_commit_is_claimed_when_git_cannot_tell_whether_the_package_is_clean(tmp_path, monkeypatch):
    """`git status` failing (here: an index git cannot read) is "not known to be clean": None,
    not the commit."""
    root = run_module.REPO_ROOT
    top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False)
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
        pytest.skip("mweval is not running from its git checkout")
    (tmp_path / "index").write_bytes(b"garbage")
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "index"))
    assert git_commit() is None


# ---- reading a run directory: every refusal names the file (and the line) --------------------------


def raw_run(d: Path, meta: dict, pred_text: str | bytes) -> Path:
    """A run directory written by hand, as an edit or a damaged copy would leave it."""
    d.mkdir(parents=True, exist_ok=True)
    (d / RUN_FILE).write_text(json.dumps(meta), encoding="utf-8")
    (d / PRED_FILE).write_bytes(pred_text if isinstance(pred_text, bytes) else pred_text.encode("utf-8"))
    return d


def line(**over) -> str:
    return json.dumps({**PRED, **over}, ensure_ascii=False)


def test_a_path_that_is_no_run_directory_is_told_what_to_give(tmp_path):
    """A run.json file: its directory; a .json file: a scores JSON holds no entries; another file."""
    (tmp_path / RUN_FILE).write_text("{}")
    (tmp_path / "s.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    assert error_text(load_run, tmp_path / RUN_FILE) == f"{tmp_path / RUN_FILE}: not a run directory: give its directory, {tmp_path}"
    assert error_text(load_run, tmp_path / "s.json") == (
        f"{tmp_path / 's.json'}: not a run directory: a scores JSON (export-scores) holds no entries: give the run directory it came from")
    assert error_text(load_run, tmp_path / "notes.txt") == f"{tmp_path / 'notes.txt'}: not a run directory: a file"
    assert error_text(load_run, tmp_path / "nope") == f"{tmp_path / 'nope'}: run directory does not exist"
    (tmp_path / "empty").mkdir()
    assert error_text(load_run, tmp_path / "empty") == f"{tmp_path / 'empty'}: not an mweval run directory (no run.json)"


def test_a_checkpoint_given_where_a_run_goes_is_recognised_by_its_config_or_its_onnx_model(tmp_path):
    """`diagnose --run DIR` of an ONNX weights package (model.onnx) or a step (config.json)."""
    hint = "; it is a checkpoint: evaluate it with --ckpt … --golden …"
    for name in ("model.onnx", "config.json"):
        d = tmp_path / name.split(".")[0]
        d.mkdir()
        (d / name).write_text("{}")
        assert error_text(load_run, d) == f"{d}: not an mweval run directory (no run.json){hint}"
    # a name that is no directory here but names a checkpoint (the bundled demo's)
    assert error_text(load_run, "step-002200") == ("step-002200: run directory does not exist; 'step-002200' names the checkpoint "
                                                   "regressed/step-002200: evaluate it with --ckpt step-002200 --golden …")


def test_run_json_must_be_of_the_run_schema_and_hold_what_readers_index(tmp_path):
    """The keys are listed in one order: profile, tags, golden, checkpoint, decode, tokenizer,
    metrics; a golden set without its sha256 or an unknown profile is 'golden/profile'."""
    d = tmp_path / "r"
    rj = d / RUN_FILE
    raw_run(d, {"schema": "mweval.scores/1"}, "")
    assert error_text(load_run, d) == f"{rj}: run.json is not an mweval file of schema mweval.run/1"
    raw_run(d, [SCHEMA], "")
    assert error_text(load_run, d) == f"{rj}: run.json is not an mweval file of schema mweval.run/1"
    raw_run(d, {"schema": SCHEMA, "tags": {}, "decode": {}}, "")
    assert error_text(load_run, d) == (f"{rj}: run.json is incomplete (lacks or mistypes profile, tags, golden, checkpoint, "
                                       "tokenizer, metrics)")
    for over in ({"golden": {"sha256": 1}}, {"golden": {}}, {"profile": {"name": "fast"}}, {"profile": {"name": None}},
                 {"profile": {"name": ["runtime"]}}):
        raw_run(d, cache_meta("k" * 32, 0, **over), "")
        assert error_text(load_run, d) == f"{rj}: run.json is incomplete (lacks or mistypes golden/profile)", over
    (d / RUN_FILE).write_text("[1,")
    assert error_text(load_run, d).startswith(f"{rj}: unreadable run.json (")
    raw_run(d, cache_meta("k" * 32, 0, profile={"name": "upstream-eval"}), "")
    assert load_run(d).profile.name == "upstream-eval"


def test_each_bad_prediction_line_is_named_by_its_line_number(tmp_path):
    """Blank lines are skipped but counted; a line that is not JSON, not an object, lacks or
    mistypes a key (listed in one order), or has a predicted value that is not a string."""
    d = tmp_path / "r"
    pf = d / PRED_FILE
    meta = cache_meta("k" * 32, 2, counts={})
    for text, where, message in (
        (line() + "\n\n{oops\n", 3, "malformed prediction ("),
        (line() + "\n[1, 2]\n", 2, "prediction row is not a JSON object"),
        ("\n" + json.dumps({"id": 1, "file": "g.jsonl", "gold": []}) + "\n", 2,
         "prediction row lacks or mistypes id, raw, gold, pred, adversarial, non_latin, labels, conf, amax_conf"),
        (line(adversarial=1, amax_conf="x") + "\n", 1, "prediction row lacks or mistypes adversarial, amax_conf"),
        (line(pred={"postcode": {"value": "1"}, "locality": {"value": None}}) + "\n", 1, "prediction row lacks or mistypes pred values"),
        (line(pred={"postcode": "75008"}) + "\n", 1, "prediction row lacks or mistypes pred values"),
    ):
        raw_run(d, meta, text)
        assert error_text(load_run, d).startswith(f"{pf}:{where}: {message}"), text
    raw_run(d, meta, (line() + "\n").encode() + b"\n\xff\xfe\n")
    assert error_text(load_run, d) == f"{pf}:3: not UTF-8"
    raw_run(d, meta, b"\n\xff\n")
    assert error_text(load_run, d) == f"{pf}:2: not UTF-8"
    pf.unlink()
    assert error_text(load_run, d) == f"{pf}: cannot read predictions: No such file or directory"


def test_predictions_must_match_run_jsons_hash_and_count(tmp_path):
    """The hash ties the pair; without one, the count in run.json still catches a truncated file."""
    d = tmp_path / "r"
    write_run(d, cache_meta("k" * 32, 2), [PRED, PRED])
    run = load_run(d)
    assert len(run.predictions) == 2 and run.path == d
    (d / PRED_FILE).write_text(line() + "\n")
    assert error_text(load_run, d) == f"{d / PRED_FILE}: predictions.jsonl does not match run.json (interrupted or edited write)"
    raw_run(d, cache_meta("k" * 32, 2), line() + "\n")
    assert error_text(load_run, d) == f"{d / PRED_FILE}: predictions.jsonl holds 1 row and run.json counts 2 (truncated or edited?)"
    raw_run(d, cache_meta("k" * 32, 1), line() + "\n" + line() + "\n")
    assert error_text(load_run, d) == f"{d / PRED_FILE}: predictions.jsonl holds 2 rows and run.json counts 1 (truncated or edited?)"
    raw_run(d, cache_meta("k" * 32, 2, counts=None), line() + "\n" + line() + "\n")  # nothing to check against
    assert len(load_run(d).predictions) == 2


def test_a_line_separator_inside_a_raw_string_does_not_split_the_row(tmp_path):
    """predictions.jsonl is split on "\\n" only (json.dumps leaves U+2028 and U+0085 unescaped)."""
    d = tmp_path / "r"
    raw = "Rue de Paris\u2028 75008\u0085 x\r"
    write_run(d, cache_meta("k" * 32, 2), [{**PRED, "raw": raw}, PRED])
    assert [p["raw"] for p in load_run(d).predictions] == [raw, "75008"]


# ---- Run: what readers take from a run -------------------------------------------------------------


def test_a_run_exposes_its_profile_tags_ids_golden_and_label():
    run = hand_run()
    assert run.profile.name == "runtime"
    assert run.tags == TAGS and run.tags is not run.meta["tags"]
    assert run.ids == ["us.jsonl:1", "us.jsonl:2", "adversarial.jsonl:3"]
    assert run.golden_sha256 == "g" * 64
    assert run.label == "hand"


def test_the_adversarial_view_is_adversarial_rows_and_with_non_latin_also_non_latin_rows():
    """README: adversarial.jsonl and kryptonite/graceful notes; `--adversarial non-latin` adds non-Latin rows."""
    run = hand_run(rows=[*ROWS[:2], ("Москва", {}, {}), ROWS[2]])
    assert run.adversarial_mask().tolist() == [False, False, False, True]
    assert run.adversarial_mask("non-latin").tolist() == [False, False, True, True]
    assert run.adversarial_mask().tolist() == [False, False, False, True]  # the mask of one call is not kept
    assert error_text(run.adversarial_mask, "latin") == "unknown --adversarial mode 'latin' (default or non-latin)"


def test_export_scores_holds_per_entry_values_flags_sums_and_row_digests_and_no_pieces():
    """A small JSON a CI commits as its baseline: the run's provenance, the metrics' views only,
    per entry id, adversarial / non-Latin as 0/1, the predicted values, the confidence sums rounded
    to 6 decimals with the piece count, and the row digest."""
    run = hand_run()
    run.predictions[0].update(conf=[0.1234567, 0.2], amax_conf=[0.1, 0.0234564], labels=["O", "O"])
    run.meta["warnings"] = ["w"]
    doc = run.to_scores()
    assert doc["entries"] == [
        {"id": "us.jsonl:1", "adv": 0, "nl": 0, "pred": {"postcode": "75008"}, "sums": [0.123456, 0.323457, 2],
         "row": row_digest("Paris 75008", {"postcode": "75008", "locality": "Paris"})},
        {"id": "us.jsonl:2", "adv": 0, "nl": 0, "pred": {"postcode": "69001", "locality": "Lyon"}, "sums": [0.9, 0.9, 1],
         "row": row_digest("Lyon 69001", {"postcode": "69001"})},
        {"id": "adversarial.jsonl:3", "adv": 1, "nl": 1, "pred": {"locality": "Моск"}, "sums": [0.9, 0.9, 1],
         "row": row_digest("Москва 101000", {"locality": "Москва"})},
    ]
    assert {k: v for k, v in doc.items() if k != "entries"} == {
        "schema": "mweval.scores/1",
        "mweval_version": "test",
        "checkpoint": {"name": "hand", "path": "/ckpt", "kind": "pytorch", "format": None, "sha256": "c" * 64, "labels": None,
                       "zero_fed_inputs": None},
        "tokenizer": {"sha256": "t" * 64},
        "golden": {"name": "hand", "sha256": "g" * 64, "files": {"us.jsonl": "f" * 64}, "rows": 3},
        "profile": {"name": "runtime"},
        "decode": {"transitions": "learned"},
        "tags": TAGS,
        "metrics": {"views": {"all": {"micro_f1": 0.5}}},
        "warnings": ["w"],
    }


def test_the_row_digest_is_16_hex_of_raw_and_gold_whatever_the_key_order():
    """Which address and gold an entry holds: the same for the same row, another for another."""
    assert row_digest("Paris 75008", {"postcode": "75008", "locality": "Paris"}) == "24b12ff5a82c8d7f"
    assert row_digest("Paris 75008", {"locality": "Paris", "postcode": "75008"}) == "24b12ff5a82c8d7f"
    assert row_digest("Москва", {}) == "ef72c1281615a378"
    assert row_digest("Paris 75008", {"postcode": "75008"}) != "24b12ff5a82c8d7f"
    assert row_digest("Paris 75008 ", {"postcode": "75008", "locality": "Paris"}) != "24b12ff5a82c8d7f"


def test_run_inputs_are_the_pair_the_golden_files_the_checkpoint_files_and_the_tokenizer(tmp_path):
    """No output may replace what the run was made from or is read from."""
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "a.jsonl").write_text("")
    (tmp_path / "golden" / "dev").mkdir()  # a directory inside is not a file of the set
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    run = hand_run(path=str(tmp_path / "run"))
    run.meta["golden"]["path"] = str(tmp_path / "golden")
    run.meta["checkpoint"]["path"] = str(tmp_path / "ckpt")
    run.meta["tokenizer"]["path"] = str(tmp_path / "t.model")
    got = run_inputs(run)
    assert got[:2] == [tmp_path / "run" / RUN_FILE, tmp_path / "run" / PRED_FILE]
    assert sorted(got) == sorted([tmp_path / "run" / RUN_FILE, tmp_path / "run" / PRED_FILE, tmp_path / "golden",
                                  tmp_path / "golden" / "a.jsonl", tmp_path / "ckpt", tmp_path / "ckpt" / "config.json",
                                  tmp_path / "t.model"])
    run.meta["checkpoint"]["path"] = str(tmp_path / "model.onnx")  # a file: itself
    run.meta["golden"] = {"path": ""}
    run.meta["tokenizer"] = "not a dict"
    assert run_inputs(run) == [tmp_path / "run" / RUN_FILE, tmp_path / "run" / PRED_FILE, tmp_path / "model.onnx"]
    # an edited run.json: a path that is empty or not a string names no input
    for tok_path in ("", 7, None):
        run.meta["checkpoint"] = {"path": 5}
        run.meta["tokenizer"] = {"path": tok_path}
        assert run_inputs(run) == [tmp_path / "run" / RUN_FILE, tmp_path / "run" / PRED_FILE], tok_path


# ---- scores baselines: paired with the candidate by row identity -----------------------------------


def scores_file(tmp_path, run, edit=None) -> Path:
    doc = run.to_scores()
    if edit:
        edit(doc)
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_scores_baseline_reads_back_as_the_run_it_came_from(tmp_path):
    """Against its own run, a scores JSON gives the same ids, flags, values, outcomes and sums;
    raw and gold are borrowed from the partner; it records its own row digest."""
    run = hand_run()
    save_run(run, tmp_path / "run")
    run = load_run(tmp_path / "run")
    base = load_scores(str(scores_file(tmp_path, run)), run)
    assert base.path == tmp_path / "scores.json"
    assert base.ids == run.ids and base.tags == TAGS
    assert base.adversarial_mask("non-latin").tolist() == run.adversarial_mask("non-latin").tolist() == [False, False, True]
    assert np.array_equal(base.outcomes, run.outcomes)
    assert base.vectors_sums() == run.vectors_sums() == [(0.9, 0.9, 1)] * 3
    p = base.predictions[2]
    assert {k: p[k] for k in ("id", "file", "line", "raw", "gold", "country", "source", "notes", "pred", "_sums", "_row")} == {
        "id": "adversarial.jsonl:3", "file": "adversarial.jsonl", "line": 3, "raw": "Москва 101000",
        "gold": {"locality": "Москва"}, "country": "US", "source": None, "notes": "", "pred": {"locality": {"value": "Моск"}},
        "_sums": (0.9, 0.9, 1), "_row": row_digest("Москва 101000", {"locality": "Москва"})}
    assert [row_identity(q) for q in base.predictions] == [row_identity(q) for q in run.predictions]
    assert base.meta == {**{k: run.meta[k] for k in ("mweval_version", "tokenizer", "profile", "decode", "tags")},
                         "checkpoint": {"name": "hand", "path": "/ckpt", "kind": "pytorch", "format": None, "sha256": "c" * 64,
                                        "labels": None, "zero_fed_inputs": None},
                         "golden": {"name": "hand", "sha256": "g" * 64, "files": {"us.jsonl": "f" * 64}, "rows": 3},
                         "metrics": {"views": {"all": {"micro_f1": 0.5}}}, "warnings": [], "schema": SCHEMA, "source": "scores"}


def test_a_scores_row_is_paired_with_the_candidate_row_holding_the_same_file_raw_and_gold(tmp_path):
    """Another golden version: a row that moved is found at its new line; a row the candidate no
    longer has borrows nothing (empty raw and gold, so compare leaves it out); its id stays the
    baseline's and its row identity the baseline's own."""
    base = hand_run(rows=[ROWS[0], ROWS[1], ("Nice 06000", {"postcode": "06000"}, {})])
    cand = hand_run(rows=[ROWS[1], ROWS[0], ("Brest 29200", {"postcode": "29200"}, {})])
    got = load_scores(scores_file(tmp_path, base), cand)
    assert [(p["id"], p["line"], p["raw"], p["gold"]) for p in got.predictions] == [
        ("us.jsonl:1", 1, "Paris 75008", {"postcode": "75008", "locality": "Paris"}),
        ("us.jsonl:2", 2, "Lyon 69001", {"postcode": "69001"}),
        ("us.jsonl:3", 3, "", {}),
    ]
    assert [row_identity(p) for p in got.predictions] == [row_identity(p) for p in base.predictions]
    assert got.predictions[2]["country"] is None and got.predictions[2]["notes"] == ""
    # the same row in another file is another row
    moved = hand_run(rows=[(*ROWS[0][:3], "fr.jsonl"), ROWS[1], ROWS[2]])
    assert [p["raw"] for p in load_scores(scores_file(tmp_path, base), moved).predictions] == ["", "Lyon 69001", ""]


def test_a_scores_file_without_row_digests_pairs_by_id_and_refuses_an_id_the_candidate_lacks(tmp_path):
    """Scores files exported before row digests: raw and gold of the same id; no row identity of
    their own (None), and an id the candidate does not have is an error naming it."""
    base = hand_run()
    path = scores_file(tmp_path, base, lambda doc: [e.pop("row") for e in doc["entries"]])
    cand = hand_run(rows=[ROWS[1], ROWS[0], ROWS[2]])
    got = load_scores(path, cand)
    assert [p["raw"] for p in got.predictions] == ["Lyon 69001", "Paris 75008", "Москва 101000"]
    assert [row_identity(p) for p in got.predictions] == [None, None, None]
    short = hand_run(rows=ROWS[:2])
    assert error_text(load_scores, path, short) == (
        f"{path}: entry adversarial.jsonl:3 of the baseline is not in the candidate run (different golden set?)")
    odd = scores_file(tmp_path, base, lambda doc: doc["entries"][0].update(id="us.jsonl:x", row=doc["entries"][1]["row"]))
    p = load_scores(odd, base).predictions[0]
    assert (p["file"], p["line"], p["raw"]) == ("us.jsonl", 0, "Lyon 69001")


@pytest.mark.parametrize(("line", "number"), [("12", 12), ("0", 0), ("²", 0), ("١٢", 0), ("9" * 5000, 0), ("", 0), ("-3", 0)])
def test_an_ids_line_is_its_ascii_digits_and_else_0(tmp_path, line, number):
    """A scores id's line part is the user's text: digits int() refuses (superscript two, 5000 nines)
    are no line (0), not a traceback with exit 1, gate's regression code."""
    base = hand_run()
    path = scores_file(tmp_path, base, lambda doc: doc["entries"][0].update(id=f"us.jsonl:{line}", row=doc["entries"][1]["row"]))
    p = load_scores(path, base).predictions[0]
    assert (p["id"], p["file"], p["line"], p["raw"]) == (f"us.jsonl:{line}", "us.jsonl", number, "Lyon 69001")


@pytest.mark.parametrize("bad", [
    {"id": 3}, {"pred": ["75008"]}, {"pred": {"postcode": 75008}}, {"adv": "0"}, {"nl": None}, {"sums": [0.9, 0.9]},
    {"sums": [0.9, 0.9, True]}, {"sums": [0.9, float("inf"), 1]}, {"sums": [float("nan"), 0.9, 1]}, {"sums": "0.9"},
    {"sums": [0.9, "0.9", 1]}, {"row": 5},
])
def test_a_malformed_scores_entry_is_named_by_its_index(tmp_path, bad):
    run = hand_run()
    path = scores_file(tmp_path, run, lambda doc: doc["entries"][1].update(bad))
    assert error_text(load_scores, path, run) == f"{path}: scores entry 1 is malformed (id, adv, nl, pred, sums)"
    path = scores_file(tmp_path, run, lambda doc: doc["entries"].insert(2, list(bad.items())))
    assert error_text(load_scores, path, run) == f"{path}: scores entry 2 is malformed (id, adv, nl, pred, sums)"


@pytest.mark.parametrize("edit", [
    lambda d: d.pop("mweval_version"), lambda d: d.update(checkpoint=None), lambda d: d.update(tags={}),
    lambda d: d.pop("metrics"), lambda d: d.update(entries={}), lambda d: d["golden"].pop("sha256"),
    lambda d: d.update(profile={"name": "fast"}), lambda d: d.update(profile={"name": ["runtime"]}),
    lambda d: d.update(decode=[]), lambda d: d.pop("tokenizer"),
])
def test_an_incomplete_scores_file_is_refused(tmp_path, edit):
    run = hand_run()
    path = scores_file(tmp_path, run, edit)
    assert error_text(load_scores, path, run) == f"{path}: scores file is incomplete (not written by mweval export-scores?)"


def test_a_scores_file_keeps_its_warnings_and_an_older_one_has_none(tmp_path):
    run = hand_run()
    run.meta["warnings"] = ["OUT OF DISTRIBUTION: zero-fed", 7]
    assert load_scores(scores_file(tmp_path, run), run).meta["warnings"] == ["OUT OF DISTRIBUTION: zero-fed", "7"]
    assert load_scores(scores_file(tmp_path, run, lambda d: d.pop("warnings")), run).meta["warnings"] == []
    path = scores_file(tmp_path, run, lambda d: d.update(schema="mweval.run/1"))
    assert error_text(load_scores, path, run) == f"{path}: scores JSON is not an mweval file of schema mweval.scores/1"


def test_a_baseline_is_a_run_directory_its_run_json_or_with_a_partner_a_scores_json(tmp_path):
    """load_run_or_scores: a scores JSON without a partner (a candidate) is refused, saying why."""
    run = hand_run()
    save_run(run, tmp_path / "run")
    assert load_run_or_scores(tmp_path / "run").ids == run.ids
    assert load_run_or_scores(tmp_path / "run" / RUN_FILE).path == tmp_path / "run"
    path = scores_file(tmp_path, run)
    assert load_run_or_scores(path, run).meta["source"] == "scores"
    assert error_text(load_run_or_scores, path) == (
        f"{path}: a scores JSON can only be the baseline (compare's BASE, gate's --baseline): it holds no entries "
        "for the other side to be compared against; the candidate is a run directory or a checkpoint")
    assert error_text(load_run_or_scores, tmp_path / "nope.json", run) == f"{tmp_path / 'nope.json'}: no such run directory or scores file"
