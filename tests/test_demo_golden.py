"""The bundled demo golden set `golden/demo-v1` (made by scripts/make_demo_golden.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import GOLDEN_ROOT, need_shared

from mailwoman_eval.golden import GoldenEntry, has_non_latin_letters, load_golden

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "golden" / "demo-v1"
GENERATOR = REPO / "scripts" / "make_demo_golden.py"

ALLOWED_TAGS = {
    "country", "region", "locality", "dependent_locality", "postcode", "subregion", "cedex", "venue",
    "street", "house_number", "unit", "po_box",
}  # fmt: skip
MIN_ROWS = {"us.jsonl": 300, "fr.jsonl": 200, "adversarial.jsonl": 60}


@pytest.fixture(scope="module")
def gset():
    return load_golden(DEMO)


def by_file(gset, name: str) -> list[GoldenEntry]:
    return [e for e in gset.entries if e.file == name]


def test_row_counts(gset):
    counts = Counter(e.file for e in gset.entries)
    assert set(counts) == set(MIN_ROWS)
    for name, minimum in MIN_ROWS.items():
        assert counts[name] >= minimum, (name, counts[name])


def test_manifest_ok(gset):
    assert gset.manifest.status == "ok", gset.manifest.problems
    manifest = json.loads((DEMO / "MANIFEST.json").read_text(encoding="utf-8"))
    assert manifest["created_by"] == "scripts/make_demo_golden.py"
    assert isinstance(manifest["seed"], int)
    assert sorted(manifest["files"]) == sorted(MIN_ROWS)


def test_values_are_substrings_of_raw(gset):
    bad = [
        (e.id, tag, value)
        for e in gset.entries
        for tag, value in e.components.items()
        if not value or value != value.strip() or value not in e.raw
    ]
    assert not bad


def test_only_allowed_tags(gset):
    for e in gset.entries:
        extra = set(e.components) - ALLOWED_TAGS
        if e.file == "adversarial.jsonl":
            assert extra <= {"attention"}, (e.id, extra)
            if extra:
                assert e.notes.startswith("graceful/attention:"), e.id
        else:
            assert not extra, (e.id, extra)
    attention_rows = [e for e in gset.entries if "attention" in e.components]
    assert 2 <= len(attention_rows) <= 3


def test_row_fields(gset):
    for e in gset.entries:
        assert e.country in ("US", "FR"), e.id
        assert e.source and (e.source.startswith("demo-gen:") or e.source == "demo-hand"), e.id
        assert e.components, e.id
        assert e.raw == e.raw.strip() and len(e.raw) <= 120, e.id
        assert set(e.extra) == set(), e.id


def test_adversarial_notes_prefixed(gset):
    rows = by_file(gset, "adversarial.jsonl")
    assert all(e.notes.startswith(("kryptonite/", "graceful/")) for e in rows)
    kinds = Counter(e.notes.split(":", 1)[0] for e in rows)
    for kind in (
        "kryptonite/place-name-venue", "kryptonite/place-shaped-venue", "kryptonite/disambiguation",
        "kryptonite/particle-honorific", "kryptonite/transliteration", "graceful/typo",
        "graceful/mis-punctuation", "graceful/unit", "graceful/mis-casing", "graceful/no-commas",
        "graceful/trailing-junk", "graceful/whitespace", "graceful/attention", "graceful/country",
    ):  # fmt: skip
        assert kinds[kind] >= 1, kind
    translit = [e for e in rows if e.notes.startswith("kryptonite/transliteration")]
    assert all(has_non_latin_letters(e.raw) for e in translit)


def test_no_duplicate_raws(gset):
    raws = Counter(e.raw for e in gset.entries)
    assert [r for r, n in raws.items() if n > 1] == []
    assert gset.duplicates == 0


def test_non_latin_rows_in_us_and_fr(gset):
    for name in ("us.jsonl", "fr.jsonl"):
        rows = by_file(gset, name)
        non_latin = [e for e in rows if has_non_latin_letters(e.raw)]
        assert len(non_latin) >= 0.04 * len(rows), (name, len(non_latin))


def _postcode_before_locality(e: GoldenEntry) -> bool:
    pc, loc = e.components.get("postcode"), e.components.get("locality")
    return bool(pc and loc) and e.raw.find(pc) < e.raw.find(loc)


def _postcode_mid(e: GoldenEntry) -> bool:
    pc = e.components.get("postcode")
    return bool(pc) and bool(e.raw[e.raw.find(pc) + len(pc) :].strip(" ,"))


def test_postcode_positions(gset):
    fr = by_file(gset, "fr.jsonl")
    us = by_file(gset, "us.jsonl")
    assert sum(_postcode_before_locality(e) for e in fr) >= 60
    assert sum(_postcode_mid(e) for e in fr) >= 30
    us_first = sum(_postcode_before_locality(e) for e in us)
    us_mid = sum(_postcode_mid(e) for e in us)
    assert us_first >= 10 and us_mid >= 20 and us_first + us_mid >= 30
    # and the plain 'postcode after locality' forms are there too
    assert (
        sum(
            not _postcode_before_locality(e)
            for e in fr
            if "postcode" in e.components and "locality" in e.components
        )
        >= 15
    )


def test_coverage_features(gset):
    us, fr = by_file(gset, "us.jsonl"), by_file(gset, "fr.jsonl")
    everything = us + fr

    def count(rows, pred):
        return sum(1 for e in rows if pred(e))

    assert count(us, lambda e: "po_box" in e.components) >= 10
    assert count(us, lambda e: "unit" in e.components) >= 10
    assert count(us, lambda e: "-" in e.components.get("postcode", "")) >= 10  # ZIP+4
    assert count(us, lambda e: "country" in e.components) >= 20
    assert count(fr, lambda e: "country" in e.components) >= 20
    assert count(fr, lambda e: "cedex" in e.components) >= 5
    assert count(fr, lambda e: any(c in e.raw for c in "éèêçôœ")) >= 40
    assert count(fr, lambda e: "-" in e.components.get("locality", "")) >= 20
    assert count(everything, lambda e: e.raw.isupper() and len(e.raw) > 10) >= 15
    assert count(everything, lambda e: "," not in e.raw) >= 20
    assert count(everything, lambda e: "  " in e.raw) >= 15
    assert count(everything, lambda e: (e.source or "").endswith("-typo")) >= 20
    shared = lambda e: e.components.get("locality", "\0") in e.components.get("venue", "")  # noqa: E731
    assert count(everything, shared) >= 20


def _first_occurrence_overlaps(e: GoldenEntry) -> list[tuple[str, str]]:
    spans = [(t, e.raw.find(v), e.raw.find(v) + len(v)) for t, v in e.components.items()]
    return [
        (a, b) for i, (a, s1, e1) in enumerate(spans) for b, s2, e2 in spans[i + 1 :] if s1 < e2 and s2 < e1
    ]


def test_first_occurrence_painting_is_clean(gset):
    """Upstream paints gold with raw.find(value): outside kryptonite rows, first occurrences must not
    collide, except where a venue contains another value on purpose (Buffalo Clinic … Buffalo)."""
    bad = []
    for e in gset.entries:
        if e.notes.startswith("kryptonite/"):
            continue
        for a, b in _first_occurrence_overlaps(e):
            ca, cb = e.components[a], e.components[b]
            if not ((a == "venue" and cb in ca) or (b == "venue" and ca in cb)):
                bad.append((e.id, a, b, e.raw))
    assert not bad


def test_generator_reproduces_committed_files(tmp_path):
    out = tmp_path / "demo"
    res = subprocess.run(
        [sys.executable, str(GENERATOR), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    committed = sorted(p.name for p in DEMO.iterdir() if p.is_file())
    regenerated = sorted(p.name for p in out.iterdir() if p.is_file())
    assert regenerated == committed
    for name in committed:
        assert (out / name).read_bytes() == (DEMO / name).read_bytes(), name


@pytest.mark.shared
def test_no_rows_shared_with_upstream(gset):
    need_shared()
    upstream: set[str] = set()
    for f in GOLDEN_ROOT.rglob("*.jsonl"):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                upstream.add(" ".join(json.loads(line)["raw"].casefold().split()))
    ours = {" ".join(e.raw.casefold().split()) for e in gset.entries}
    assert sorted(ours & upstream) == []
