"""Golden-set loading, rule by rule (design.md Decisions, "Golden rows" and "Names"; upstream-formats.md §6
and §8; README "Golden sets" and the bad-input rules): which files make a set, how a row is parsed, the
adversarial and non_latin flags, duplicates, manifest and split-manifest checks, sha256s, and errors that
name the file and line. The bundled demo-v1 and upstream v0.1.2 are read in place; altered copies live in
tmp_path."""

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import UPSTREAM, error_text

from mailwoman_eval import golden as G
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.golden import (
    GoldenEntry,
    GoldenFile,
    check_manifest,
    has_non_latin_letters,
    load_golden,
    parse_row,
    read_jsonl,
    resolve_golden,
    substring_problems,
)

DEMO = Path(__file__).resolve().parents[1] / "golden" / "demo-v1"
V012 = UPSTREAM / "golden" / "v0.1.2"
needs_v012 = pytest.mark.usefixtures("shared")  # skipped without the upstream data; a failure in CI (MWEVAL_REQUIRE_SHARED)


def row(raw="12 Main St", **comps):
    return json.dumps({"raw": raw, "components": comps or {"street": "Main St"}})


def write(d: Path, name: str, lines, raw_bytes: bytes | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_bytes(raw_bytes if raw_bytes is not None else ("\n".join(lines) + "\n").encode())
    return p


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ---- the bundled and upstream sets, in place ------------------------------------------------


def test_demo_set_files_counts_sha256s_and_manifest():
    """A set is its top-level *.jsonl in sorted order; per-file sha256 is of the bytes; MANIFEST.json agrees."""
    g = load_golden(DEMO)
    assert g.name == "demo-v1" and g.path == DEMO
    assert [(f.name, f.entries) for f in g.files] == [("adversarial.jsonl", 89), ("fr.jsonl", 241), ("us.jsonl", 319)]
    assert all(f.sha256 == sha(DEMO / f.name) for f in g.files)
    assert len(g.entries) == 649 and g.duplicates == 0
    assert [e.file for e in g.entries] == ["adversarial.jsonl"] * 89 + ["fr.jsonl"] * 241 + ["us.jsonl"] * 319
    assert g.entries[0].id == "adversarial.jsonl:1" and g.entries[89].id == "fr.jsonl:1" and g.entries[-1].id == "us.jsonl:319"
    assert g.manifest.status == "ok" and g.manifest.problems == () and g.manifest.manifest == str(DEMO / "MANIFEST.json")
    # one hash over the per-file hashes: what compare/gate check for "same golden"
    text = "".join(f"{f.name}:{sha(DEMO / f.name)}\n" for f in g.files)
    assert g.sha256 == hashlib.sha256(text.encode()).hexdigest()
    j = g.to_json()
    assert j["rows"] == 649 and j["duplicates"] == 0 and j["sha256"] == g.sha256 and j["name"] == "demo-v1"
    assert j["files"]["fr.jsonl"] == {"sha256": sha(DEMO / "fr.jsonl"), "entries": 241}
    assert j["manifest"] == {"status": "ok", "manifest": str(DEMO / "MANIFEST.json"), "problems": []}
    assert load_golden(DEMO, name="other").name == "other"


def test_demo_flags():
    """adversarial = adversarial.jsonl or kryptonite/ graceful/ notes; non_latin is script-based (accented French is Latin)."""
    g = load_golden(DEMO)
    assert [e.adversarial for e in g.entries] == [e.file == "adversarial.jsonl" for e in g.entries]
    assert g.entries[33].non_latin and g.entries[33].raw.startswith("Ресторан")
    accented = [e for e in g.entries if e.file == "fr.jsonl" and not e.raw.isascii()]
    assert accented and sum(e.non_latin for e in accented) < len(accented)
    assert sum(e.non_latin for e in g.entries) == 43


@needs_v012
def test_upstream_v012_top_level_and_splits():
    """§6: 54/1551/2956 rows at HEAD, MANIFEST ok; test split ok; dev/fr.jsonl mismatches SPLIT-MANIFEST by design."""
    g = load_golden(V012)
    assert [(f.name, f.entries) for f in g.files] == [("adversarial.jsonl", 54), ("fr.jsonl", 1551), ("us.jsonl", 2956)]
    assert g.manifest.status == "ok" and g.manifest.manifest == str(V012 / "MANIFEST.json")
    assert sum(e.adversarial for e in g.entries) == 54  # dev/ and test/ are not part of the top-level set
    t = load_golden(V012 / "test")
    assert [(f.name, f.entries) for f in t.files] == [("adversarial.jsonl", 5), ("fr.jsonl", 155), ("us.jsonl", 296)]
    assert t.manifest.status == "ok" and t.manifest.manifest == str(V012 / "SPLIT-MANIFEST.json")
    d = load_golden(V012 / "dev")
    assert d.manifest.status == "mismatch" and d.manifest.manifest == str(V012 / "SPLIT-MANIFEST.json")
    assert len(d.manifest.problems) == 2 and all(p.startswith("fr.jsonl: ") for p in d.manifest.problems)
    assert "fr.jsonl: 1546 rows != manifest 1396" in d.manifest.problems
    assert d.manifest.problems[0].startswith(f"fr.jsonl: sha256 {sha(V012 / 'dev' / 'fr.jsonl')[:12]}")


@needs_v012
def test_a_split_manifest_is_read_only_for_dev_and_test(tmp_path):
    """SPLIT-MANIFEST.json vouches for dev/ and test/ only; the split's own row and hash fields are the ones checked."""
    shutil.copy(V012 / "SPLIT-MANIFEST.json", tmp_path)
    shutil.copytree(V012 / "test", tmp_path / "other")
    assert load_golden(tmp_path / "other").manifest.status == "absent"
    shutil.copytree(V012 / "test", tmp_path / "dev")
    m = load_golden(tmp_path / "dev").manifest  # test files checked against the dev fields: every file mismatches
    assert m.status == "mismatch" and len(m.problems) == 6
    # a MANIFEST.json in the directory itself wins over the parent's split manifest
    (tmp_path / "test").mkdir()
    write(tmp_path / "test", "a.jsonl", [row()])
    (tmp_path / "test" / "MANIFEST.json").write_text(json.dumps({"files": {"a.jsonl": {"entries": 1}}}))
    m = load_golden(tmp_path / "test").manifest
    assert m.status == "ok" and m.manifest == str(tmp_path / "test" / "MANIFEST.json")


# ---- which files ---------------------------------------------------------------------------------


def test_only_top_level_regular_jsonl_files_in_sorted_order(tmp_path):
    write(tmp_path, "b.jsonl", [row("2 B St")])
    write(tmp_path, "a.jsonl", [row("1 A St")])
    write(tmp_path, "c.json", [row("3 C St")])
    write(tmp_path / "sub", "d.jsonl", [row("4 D St")])
    (tmp_path / "e.jsonl").mkdir()
    g = load_golden(tmp_path)
    assert [f.name for f in g.files] == ["a.jsonl", "b.jsonl"] and [e.raw for e in g.entries] == ["1 A St", "2 B St"]
    assert g.name == tmp_path.name and g.manifest.status == "absent" and g.manifest.manifest is None


def test_directory_errors_name_the_path(tmp_path):
    assert error_text(load_golden, tmp_path / "nope") == f"{tmp_path / 'nope'}: golden directory does not exist"
    f = write(tmp_path, "g.jsonl", [row()])
    assert error_text(load_golden, f) == f"{f}: golden path is not a directory"
    (tmp_path / "empty").mkdir()
    assert error_text(load_golden, tmp_path / "empty").endswith("golden directory has no *.jsonl files")
    write(tmp_path / "blank", "g.jsonl", [], raw_bytes=b"\n \n\t\n")
    assert error_text(load_golden, tmp_path / "blank") == f"{tmp_path / 'blank'}: golden set has no rows (every *.jsonl is empty)"


def test_one_empty_file_among_others_loads_with_zero_rows(tmp_path):
    write(tmp_path, "a.jsonl", [], raw_bytes=b"")
    write(tmp_path, "b.jsonl", [row()])
    g = load_golden(tmp_path)
    assert [(f.name, f.entries) for f in g.files] == [("a.jsonl", 0), ("b.jsonl", 1)]
    assert g.files[0].sha256 == hashlib.sha256(b"").hexdigest()


# ---- rows ---------------------------------------------------------------------------------------


def test_read_jsonl_ids_lines_bom_crlf(tmp_path):
    """Lines are stripped and blank lines skipped (as upstream), but ids keep the file's own line numbers."""
    data = b"\xef\xbb\xbf" + b"\r\n".join([row("1 A St").encode(), b"", b"  \t", ("  " + row("4 D St") + "  ").encode(), b""])
    p = write(tmp_path, "x.jsonl", None, raw_bytes=data)
    entries, got = read_jsonl(p)
    assert got == data  # the hash is of the file bytes, BOM included
    assert [(e.id, e.line, e.file, e.raw) for e in entries] == [("x.jsonl:1", 1, "x.jsonl", "1 A St"), ("x.jsonl:4", 4, "x.jsonl", "4 D St")]
    g = load_golden(tmp_path)
    assert g.files == (GoldenFile("x.jsonl", hashlib.sha256(data).hexdigest(), 2),)


def test_errors_name_the_full_path_and_line(tmp_path):
    """README: a bad golden row is a one-line error naming file and line."""
    p = write(tmp_path, "g.jsonl", [row(), "", '{"raw": "x", "components": {'])
    assert error_text(read_jsonl, p).startswith(f"{p}:3: malformed JSON")
    p = write(tmp_path, "g.jsonl", None, raw_bytes=row().encode() + b"\n" + b'{"raw": "caf\xe9"}\n')
    assert error_text(read_jsonl, p) == f"{p}:2: not UTF-8 (byte 12)"
    p = write(tmp_path, "g.jsonl", None, raw_bytes=(row() + "\r" + row() + "\r").encode())
    assert "rows end in a bare CR" in error_text(read_jsonl, p)
    p = write(tmp_path, "g.jsonl", [row(), '{"raw": "x", "components": {}} {"raw": "y"}'])
    e = error_text(read_jsonl, p)
    assert e.startswith(f"{p}:2: malformed JSON") and "bare CR" not in e
    # the hint is for a CR before the extra data, not for one further on
    p = write(tmp_path, "g.jsonl", None, raw_bytes=(row() + "x\r" + row() + "\n").encode())
    assert "bare CR" not in error_text(read_jsonl, p)
    assert error_text(read_jsonl, tmp_path / "missing.jsonl").startswith(f"{tmp_path / 'missing.jsonl'}: cannot read golden file")


@pytest.mark.parametrize(
    "text, message",
    [
        ('["12 Main St", {}]', "row is an array, not a JSON object"),
        ('"12 Main St"', "row is a string, not a JSON object"),
        ("null", "row is null, not a JSON object"),
        ("true", "row is a boolean, not a JSON object"),
        ("1.5", "row is a number, not a JSON object"),
        ('{"components": {}}', "row has no `raw`"),
        ('{"raw": 12, "components": {}}', "`raw` is a number, not a string"),
        ('{"raw": null, "components": {}}', "`raw` is null, not a string"),
        ('{"raw": "", "components": {}}', "`raw` is empty or whitespace only"),
        ('{"raw": " \\t\\u3000 ", "components": {}}', "`raw` is empty or whitespace only"),
        ('{"raw": "12 Main St"}', "row has no `components`"),
        ('{"raw": "12 Main St", "components": ["Main St"]}', "`components` is an array, not an object"),
        ('{"raw": "12 Main St", "components": {"street": 12}}', "component 'street' is a number, not a string"),
        ('{"raw": "12 Main St", "components": {"street": null}}', "component 'street' is null, not a string"),
        ('{"raw": "12 Main St", "components": {"a": "x", "b": {}}}', "component 'b' is an object, not a string"),
        ('{"raw": "\\ud800 Main St", "components": {}}', "unpaired UTF-16 surrogate in a JSON string escape"),
        ('{"raw": "1 Main St", "components": {"\\udfff": "x"}}', "unpaired UTF-16 surrogate in a JSON string escape"),
        ('{"raw": "1 Main St", "components": {}, "x": [["\\uDC00"]]}', "unpaired UTF-16 surrogate in a JSON string escape"),
    ],
)
def test_row_errors(text, message):
    assert error_text(parse_row, text, "g.jsonl", 7) == f"g.jsonl:7: {message}"
    assert error_text(parse_row, text, "g.jsonl", 7, where="/abs/g.jsonl:7") == f"/abs/g.jsonl:7: {message}"


def test_json_constants_and_deep_nesting_are_row_errors():
    assert error_text(parse_row, '{"raw": "1 Main St", "components": {}, "s": NaN}', "g.jsonl", 1).startswith("g.jsonl:1: malformed JSON")
    assert error_text(parse_row, '{"raw": "1 Main St", "components": {}, "s": -Infinity}', "g.jsonl", 1).startswith("g.jsonl:1: malformed")
    deep = '{"raw": "1 Main St", "components": {}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert error_text(parse_row, deep, "g.jsonl", 1).startswith("g.jsonl:1: malformed JSON")


def test_a_paired_surrogate_escape_is_fine():
    e = parse_row('{"raw": "\\ud83d\\ude00 1 Main St", "components": {"x": "\\uD83D\\uDE00"}}', "g.jsonl", 1)
    assert e.raw == "\U0001f600 1 Main St" and e.components == {"x": "\U0001f600"}


def test_raw_length_limit_is_inclusive():
    ok = "a" * G.MAX_RAW_CHARS
    assert G.MAX_RAW_CHARS == 100_000
    assert parse_row(json.dumps({"raw": ok, "components": {}}), "g.jsonl", 1).raw == ok
    msg = error_text(parse_row, json.dumps({"raw": ok + "b", "components": {}}), "g.jsonl", 1)
    assert msg == "g.jsonl:1: `raw` is 100001 characters; a postal address is at most 100000"


def test_optional_fields_are_kept():
    """design.md: country, source, notes and anything else are optional and kept."""
    e = parse_row(json.dumps({"raw": "12 Main St", "components": {"street": "Main St"}, "country": "US", "source": "golden",
                              "notes": "hand", "seed_source_id": "t-1", "provenance": {"provider": "x"}}), "us.jsonl", 3)
    assert (e.id, e.file, e.line, e.raw, e.components) == ("us.jsonl:3", "us.jsonl", 3, "12 Main St", {"street": "Main St"})
    assert (e.country, e.source, e.notes) == ("US", "golden", "hand")
    assert e.extra == {"seed_source_id": "t-1", "provenance": {"provider": "x"}}
    bare = parse_row('{"raw": "12 Main St", "components": {}}', "g.jsonl", 1)
    assert (bare.country, bare.source, bare.notes, bare.extra, bare.components) == (None, None, "", {}, {})
    odd = parse_row(json.dumps({"raw": "x", "components": {}, "country": 3, "source": ["a"], "notes": None}), "g.jsonl", 1)
    assert (odd.country, odd.source, odd.notes) == (None, None, "")
    listed = parse_row(json.dumps({"raw": "x", "components": {}, "notes": ["kryptonite/a", "é"]}), "g.jsonl", 1)
    assert listed.notes == '["kryptonite/a", "é"]' and not listed.adversarial


def test_entry_invariants():
    assert error_text(GoldenEntry, "g:1", "g", 1, " ", {}) == "g:1: `raw` must be a non-empty string"
    with pytest.raises(MwevalError, match="component 'a' is not a string"):
        GoldenEntry("g:1", "g", 1, "x", {"a": 1})
    with pytest.raises(MwevalError, match="non-empty string"):
        GoldenEntry("g:1", "g", 1, 5, {})


# ---- flags ----------------------------------------------------------------------------------------


def entry(raw="1 Main St", file="us.jsonl", notes=""):
    return GoldenEntry(f"{file}:1", file, 1, raw, {}, notes=notes)


def test_adversarial_is_the_file_or_the_notes_prefix():
    """README/§6: adversarial.jsonl, and notes starting kryptonite/ or graceful/."""
    assert entry(file="adversarial.jsonl").adversarial
    assert entry(file="dev/adversarial.jsonl").adversarial
    assert not entry(file="my-adversarial.jsonl").adversarial and not entry(file="adversarial.jsonl.bak").adversarial
    assert entry(notes="kryptonite/place-name-venue: x").adversarial and entry(notes="graceful/typo: x").adversarial
    assert not entry(notes="see kryptonite/x").adversarial and not entry(notes="kryptonite").adversarial
    assert not entry().adversarial


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("12 Main St", False),
        ("12 rue Émile-Zola, Besançon", False),  # accented French is Latin
        ("Straße 5 – Köln", False),  # Common punctuation and Latin letters
        ("e\u0301cole 1", False),  # a combining mark is Inherited
        ("Москва Deli, 72 Elm St", True),
        ("東京都 1-2", True),
        ("القاهرة Grocery", True),
        ("Αθήνα 10552", True),
        ("12 Main St ①", False),
    ],
)
def test_non_latin_is_script_based(raw, expected):
    assert entry(raw).non_latin is expected
    assert has_non_latin_letters(raw) is expected


# ---- duplicates ---------------------------------------------------------------------------------


def test_duplicates_count_rows_repeating_raw_and_components(tmp_path):
    write(tmp_path, "a.jsonl", [
        json.dumps({"raw": "1 A St", "components": {"street": "A St", "house_number": "1"}}),
        json.dumps({"raw": "1 A St", "components": {"house_number": "1", "street": "A St"}, "notes": "x"}),  # order and notes do not matter
        json.dumps({"raw": "1 A St", "components": {"street": "A St"}}),  # other components: not a repeat
    ])
    write(tmp_path, "b.jsonl", [json.dumps({"raw": "1 A St", "components": {"street": "A St", "house_number": "1"}})])
    g = load_golden(tmp_path)
    assert g.duplicates == 2 and len(g.entries) == 4 and g.to_json()["duplicates"] == 2


# ---- manifests -----------------------------------------------------------------------------------


def manifest_dir(tmp_path, files_entry, extra_files=()):
    d = tmp_path / "set"
    p = write(d, "a.jsonl", [row("1 A St"), row("2 B St")])
    for n in extra_files:
        write(d, n, [row("3 C St")])
    (d / "MANIFEST.json").write_text(json.dumps({"files": files_entry(sha(p))}))
    return d


@pytest.mark.parametrize(
    "files_entry, problems",
    [
        (lambda s: {"a.jsonl": {"sha256": s, "entries": 2}}, ()),
        (lambda s: {"a.jsonl": {"sha256": s}}, ()),
        (lambda s: {"a.jsonl": {"entries": 2}}, ()),
        (lambda s: {"a.jsonl": {}}, ("a.jsonl: the manifest gives neither its sha256 nor its row count",)),
        (lambda s: {"a.jsonl": {"sha256": s, "entries": 3}}, ("a.jsonl: 2 rows != manifest 3",)),
        (lambda s: {"a.jsonl": {"sha256": s, "entries": True}}, ("a.jsonl: the manifest's row count True is not an integer",)),
        (lambda s: {"a.jsonl": {"sha256": s, "entries": "2"}}, ("a.jsonl: the manifest's row count '2' is not an integer",)),
        (lambda s: {"a.jsonl": {"sha256": "0" * 64, "entries": 2}}, ("a.jsonl: sha256 {s12}… != manifest 000000000000…",)),
        (lambda s: {"a.jsonl": {"sha256": s, "entries": 2}, "z.jsonl": {"entries": 1}}, ("z.jsonl: listed in the manifest but missing",)),
        (lambda s: {"a.jsonl": {"entries": 2}, "z.jsonl": "not an object"}, ()),
    ],
)
def test_manifest_problems(tmp_path, files_entry, problems):
    d = manifest_dir(tmp_path, files_entry)
    m = load_golden(d).manifest
    s12 = sha(d / "a.jsonl")[:12]
    assert m.problems == tuple(p.format(s12=s12) for p in problems)
    assert m.status == ("mismatch" if problems else "ok") and m.manifest == str(d / "MANIFEST.json")


def test_manifest_lists_unlisted_files_and_several_problems_in_order(tmp_path):
    d = manifest_dir(tmp_path, lambda s: {"a.jsonl": {"sha256": "f" * 64, "entries": 9}}, extra_files=("c.jsonl", "b.jsonl"))
    m = load_golden(d).manifest
    assert m.status == "mismatch"
    assert m.problems == (f"a.jsonl: sha256 {sha(d / 'a.jsonl')[:12]}… != manifest ffffffffffff…", "a.jsonl: 2 rows != manifest 9",
                          "b.jsonl: not listed in the manifest", "c.jsonl: not listed in the manifest")


def test_check_manifest_directly(tmp_path):
    (tmp_path / "MANIFEST.json").write_text(json.dumps({"files": {"b.jsonl": {"entries": 1}, "a.jsonl": {"entries": 1}}}))
    m = check_manifest(tmp_path, [])
    assert m.problems == ("a.jsonl: listed in the manifest but missing", "b.jsonl: listed in the manifest but missing")
    assert check_manifest(tmp_path / "none", [GoldenFile("a.jsonl", "x", 1)]).to_json() == {"status": "absent", "manifest": None, "problems": []}


@pytest.mark.parametrize("text", ["{", "[]", '{"files": []}', '{"files": null}', "{}", "1" * 5000])
def test_an_unreadable_manifest_is_an_error_naming_it(tmp_path, text):
    write(tmp_path, "a.jsonl", [row()])
    (tmp_path / "MANIFEST.json").write_text(text)
    msg = error_text(load_golden, tmp_path)
    assert msg.startswith(f"{tmp_path / 'MANIFEST.json'}: ")
    assert ("unreadable manifest" in msg) or ("manifest has no `files` object" in msg)


def test_a_manifest_with_a_bom_is_read(tmp_path):
    p = write(tmp_path, "a.jsonl", [row()])
    (tmp_path / "MANIFEST.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"files": {"a.jsonl": {"sha256": sha(p), "entries": 1}}}).encode())
    assert load_golden(tmp_path).manifest.status == "ok"


# ---- names ----------------------------------------------------------------------------------------


def test_resolve_an_existing_path_and_split_names(tmp_path, monkeypatch):
    assert resolve_golden(str(DEMO)) == (DEMO, "demo-v1")
    write(tmp_path / "s" / "dev", "a.jsonl", [row()])
    assert resolve_golden(str(tmp_path / "s" / "dev")) == (tmp_path / "s" / "dev", "s/dev")
    monkeypatch.chdir(tmp_path / "s" / "dev")
    assert resolve_golden(".") == (Path("."), "s/dev")


def test_resolve_names_in_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    first, second = tmp_path / "r1", tmp_path / "r2"
    write(second / "myset", "a.jsonl", [row()])
    write(second / "myset" / "test", "a.jsonl", [row()])
    monkeypatch.setenv("MWEVAL_GOLDEN_PATH", f"{first}:{second}")
    assert resolve_golden("myset") == (second / "myset", "myset")
    assert resolve_golden("myset/test") == (second / "myset" / "test", "myset/test")
    write(first / "myset", "a.jsonl", [row()])
    assert resolve_golden("myset") == (first / "myset", "myset")
    assert resolve_golden("demo-v1") == (G.BUNDLED_GOLDEN / "demo-v1", "demo-v1")
    write(tmp_path / "data" / "eval" / "golden" / "demo-v1", "a.jsonl", [row()])
    assert resolve_golden("demo-v1") == (Path("data/eval/golden/demo-v1"), "demo-v1")
    names = [(n, lvl) for n, _, lvl in G.available_golden()]
    assert ("myset", "MWEVAL_GOLDEN_PATH") in names and ("myset/test", "MWEVAL_GOLDEN_PATH") in names
    assert ("demo-v1", "bundled") in names and ("demo-v1", "./data/eval/golden") in names
    assert ("myset/dev", "MWEVAL_GOLDEN_PATH") not in names


def test_unknown_names_and_missing_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MWEVAL_GOLDEN_PATH", str(tmp_path / "r"))
    assert error_text(resolve_golden, "./nope") == "./nope: golden directory does not exist"
    assert error_text(resolve_golden, "/nope/x") == "/nope/x: golden directory does not exist"
    msg = error_text(resolve_golden, "gamma")
    assert msg.startswith("unknown golden set 'gamma'; available: ") and "demo-v1" in msg and f"MWEVAL_GOLDEN_PATH ({tmp_path / 'r'})" in msg
    assert "golden pull" not in msg
    assert "`mweval golden pull v0.1.2` fetches it" in error_text(resolve_golden, "v0.1.2")
    assert error_text(resolve_golden, "demo-v1/dev").startswith("golden set demo-v1 has no 'dev' split")
    assert error_text(resolve_golden, "gamma/dev").startswith("unknown golden set 'gamma/dev'; available: ")  # no set, so no split
    monkeypatch.delenv("MWEVAL_GOLDEN_PATH")
    assert "MWEVAL_GOLDEN_PATH" not in error_text(resolve_golden, "gamma")


def test_substring_problems_mark_case_only():
    g = G.GoldenSet("x", Path("x"), (
        GoldenEntry("a:1", "a", 1, "12 Main St", {"street": "main st", "number": "12", "empty": "", "city": "Paris"}),
    ), (), G.ManifestCheck("absent", None), 0)
    assert substring_problems(g) == [
        {"id": "a:1", "tag": "street", "value": "main st", "raw": "12 Main St", "case_only": True},
        {"id": "a:1", "tag": "city", "value": "Paris", "raw": "12 Main St", "case_only": False},
    ]


def test_a_fifo_named_jsonl_is_refused_not_waited_on(tmp_path):
    """A FIFO would be opened and waited on forever; it is a one-line error naming it (a writer unblocks a broken reader)."""
    fifo = tmp_path / "g.jsonl"
    os.mkfifo(fifo)

    def unblock():
        time.sleep(3)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    threading.Thread(target=unblock, daemon=True).start()
    assert error_text(read_jsonl, fifo) == f"{fifo}: not a regular file (a FIFO)"


def test_a_path_string_and_dot_inside_a_split_load(tmp_path, monkeypatch):
    """`.` inside v0.1.2/dev is the dev split too: its SPLIT-MANIFEST.json is found through the resolved path."""
    g = load_golden(str(DEMO))
    assert g.name == "demo-v1" and g.path == DEMO and g.manifest.status == "ok"
    d = tmp_path / "s" / "dev"
    p = write(d, "a.jsonl", [row()])
    (tmp_path / "s" / "SPLIT-MANIFEST.json").write_text(json.dumps({"files": {"a.jsonl": {"dev": 1, "dev_sha256": sha(p)}}}))
    monkeypatch.chdir(d)
    m = load_golden(Path(".")).manifest
    assert m.status == "ok" and m.manifest == str(tmp_path / "s" / "SPLIT-MANIFEST.json")
