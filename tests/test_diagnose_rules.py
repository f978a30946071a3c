"""diagnose's own bookkeeping, rule by rule (README "Diagnose: error categories"; design.md Decisions;
upstream-formats.md §8, §10.2): which errors are counted in which view (all = excluding adversarial +
adversarial only), per-category counts and their order, secondary categories and the tag that took a
numeric value, the headline's order and shares, seeded example sampling, the Δ, and the error table."""

import csv
import io
import random

import pytest
from runfactory import make_run

from mailwoman_eval.buckets import DEFAULT_CATEGORIES, UPSTREAM_CATEGORIES
from mailwoman_eval.diagnose import (
    ERROR_COLUMNS,
    _delta,
    console,
    diagnose,
    error_rows,
    error_tables,
    headline,
    select_tags,
    to_json,
    upstream_console,
    write_error_table,
)
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.metrics import VIEWS

TAGS = ["locality", "postcode", "region"]
ROWS = [
    ("Springfield 12345", {"locality": "Springfield", "postcode": "12345"}, {"locality": "Springfield"}),
    ("Paris 75008", {"locality": "Paris", "postcode": "75008"}, {"locality": "paris", "postcode": "75008"}),
    ("Boston 02101", {"locality": "Boston"}, {"locality": "Boston", "postcode": "02101"}, "adversarial.jsonl"),
    ("Koln 50667", {"postcode": "50667"}, {}, "adversarial.jsonl"),
    ("Main St 90210 12", {"postcode": "90210"}, {"postcode": "12", "region": "90210"}),
    ("Москва 101000", {"locality": "Москва"}, {"locality": "Моск"}),
]


def run(rows=ROWS, tags=TAGS, profile="upstream-eval"):
    return make_run(rows, tags, profile)


def test_every_error_is_counted_in_all_and_in_exactly_one_partial_view():
    """The views split the entries: per tag, kind and category, all = excluding + adversarial only."""
    d = diagnose(run())
    for tag in TAGS:
        for kind in ("FP", "FN"):
            a, e, o = (d.buckets[v][tag][kind] for v in VIEWS)
            assert a["total"] == e["total"] + o["total"] == sum(1 for x in d.errors if x.tag == tag and x.kind == kind)
            for key in ("primary", "all_categories", "secondary", "num_confused_with"):
                for cat, n in a[key].items():
                    assert n == e[key].get(cat, 0) + o[key].get(cat, 0), (tag, kind, key, cat)
    pc = {v: {k: d.buckets[v]["postcode"][k]["primary"] for k in ("FP", "FN")} for v in VIEWS}
    assert pc == {
        "all": {"FP": {"hallucinated": 1, "num_confused": 1}, "FN": {"empty_pred": 2, "num_confused": 1}},
        "excluding_adversarial": {"FP": {"num_confused": 1}, "FN": {"empty_pred": 1, "num_confused": 1}},
        "adversarial_only": {"FP": {"hallucinated": 1}, "FN": {"empty_pred": 1}},
    }
    assert d.buckets["adversarial_only"]["locality"]["FN"] == {
        "total": 0, "primary": {}, "all_categories": {}, "secondary": {}, "num_confused_with": {}}
    assert to_json(d)["view_entries"] == {"all": 6, "excluding_adversarial": 4, "adversarial_only": 2}


def test_a_wrong_value_is_one_fp_and_one_fn_of_its_own_tag_only():
    """§8: a wrong value counts in both lists; FP and FN totals are per tag and kind."""
    d = diagnose(run())
    b = d.buckets["all"]
    assert {t: (b[t]["FP"]["total"], b[t]["FN"]["total"]) for t in TAGS} == {"locality": (2, 2), "postcode": (2, 3), "region": (1, 0)}


def test_primary_categories_by_count_then_first_occurrence():
    """Ties keep first-occurrence order (upstream's stable sort, §10.2), not the alphabet."""
    rows = [
        ("Berlin", {"locality": "Berlin"}, {"locality": "Hamburg"}),  # other
        ("Paris", {"locality": "Paris"}, {"locality": "paris"}),  # case_only
        ("Lyon", {"locality": "Lyon"}, {"locality": "lyon"}),  # case_only
        ("Nice", {"locality": "Nice"}, {}),  # empty_pred
    ]
    b = diagnose(run(rows, ["locality"])).buckets["all"]["locality"]
    assert list(b["FN"]["primary"].items()) == [("case_only", 2), ("other", 1), ("empty_pred", 1)]
    assert list(b["FP"]["primary"].items()) == [("case_only", 2), ("other", 1)]
    assert b["FN"]["total"] == 4 and b["FP"]["total"] == 3


def test_secondary_categories_leave_out_the_primary_and_name_the_tag_that_took_the_number():
    d = diagnose(run())
    region = d.buckets["all"]["region"]["FP"]
    assert region["primary"] == {"hallucinated": 1}
    assert region["all_categories"] == {"hallucinated": 1, "num_confused": 1}
    assert region["secondary"] == {"num_confused": 1}
    assert region["num_confused_with"] == {"postcode": 1}
    pfn = d.buckets["all"]["postcode"]["FN"]
    assert pfn["num_confused_with"] == {"region": 1} and pfn["secondary"] == {}
    loc = d.buckets["all"]["locality"]["FN"]
    assert loc["secondary"] == {"non_latin": 1}  # never primary, listed among the categories
    assert list(loc["all_categories"].items()) == [("case_only", 1), ("non_latin", 1), ("other", 1)]  # ties by name


def test_counts_of_categories_sort_by_count_descending():
    rows = [(f"Москва {i}", {"locality": "Москва"}, {"locality": "Моск"}) for i in range(2)]
    rows += [("Paris", {"locality": "Paris"}, {"locality": "paris"})]
    b = diagnose(run(rows, ["locality"])).buckets["all"]["locality"]["FN"]
    assert list(b["all_categories"].items()) == [("non_latin", 2), ("other", 2), ("case_only", 1)]
    assert list(b["primary"].items()) == [("other", 2), ("case_only", 1)]
    assert b["secondary"] == {"non_latin": 2}


def test_tags_filter_keeps_errors_and_buckets_of_the_chosen_tags_and_whole_run_metrics():
    r = run()
    d = diagnose(r, tags="region,postcode")
    assert d.tags == ["region", "postcode"] and d.filtered
    assert {e.tag for e in d.errors} == {"region", "postcode"} and len(d.errors) == 6
    assert all(list(d.buckets[v]) == ["region", "postcode"] for v in VIEWS)
    assert [h["tag"] for h in d.headline] == ["postcode", "region"]
    j = to_json(d)
    assert j["tags_filter"] == ["region", "postcode"]
    assert set(j["metrics"]["all"]["per_tag"]) == set(TAGS)  # the run's, not the filter's
    assert list(j["delta_excluding_minus_all"]) == ["region", "postcode"]
    whole = diagnose(r)
    assert not whole.filtered and to_json(whole)["tags_filter"] is None and len(whole.errors) == 10
    assert diagnose(r, tags="locality,postcode,region").filtered is False  # every tag, in the run's order


def test_select_tags_strips_dedupes_and_refuses_unknown_tags():
    r = run()
    assert select_tags(r, " postcode ,postcode,, locality") == ["postcode", "locality"]
    assert select_tags(r, None) == TAGS
    with pytest.raises(MwevalError, match="not scored in this run"):
        select_tags(r, "postcode,house_number")


def test_headline_orders_by_errors_then_fn_then_tag_order_and_skips_clean_tags():
    """FN + FP first (a tag failing only by FPs is not buried), then FN, then the run's tag order."""
    rows = [
        ("Aa Bb", {"locality": "Aa"}, {"locality": "Bb"}),  # locality FP 1 + FN 1
        ("X", {}, {"region": "X"}),
        ("Y", {}, {"region": "Y"}),  # region FP 2, FN 0
        ("1", {"postcode": "1"}, {}),
        ("2", {"postcode": "2"}, {}),  # postcode FN 2
        ("FR", {"country": "FR"}, {"country": "FR"}),  # country: no error
        ("Main", {}, {"street": "Main"}),  # street FP 1
    ]
    tags = ["street", "region", "locality", "postcode", "country"]
    h = diagnose(run(rows, tags)).headline
    assert [(x["tag"], x["fn"], x["fp"]) for x in h] == [("postcode", 2, 0), ("locality", 1, 1), ("region", 0, 2), ("street", 0, 1)]
    assert "fp_top" not in h[0] and "fn_top" not in h[2]
    assert h[2]["fp_top"] == {"category": "hallucinated", "count": 2, "share": 1.0}
    assert h[0]["text"] == "postcode FN 2: 100% empty_pred (2)"
    assert h[2]["text"] == "region FN 0; FP 2: 100% hallucinated"
    # equal totals and FN: the run's tag order decides
    rows = [("a", {}, {"region": "X"}), ("b", {}, {"street": "Y"})]
    assert [x["tag"] for x in diagnose(run(rows, ["region", "street"])).headline] == ["region", "street"]
    assert [x["tag"] for x in diagnose(run(rows, ["street", "region"])).headline] == ["street", "region"]
    assert diagnose(run([("a", {"region": "X"}, {"region": "X"})], ["region"])).headline == []


def test_headline_shares_are_of_the_tags_own_total_in_the_all_view():
    h = {x["tag"]: x for x in diagnose(run()).headline}
    assert h["postcode"]["fn_top"] == {"category": "empty_pred", "count": 2, "share": 0.6667}
    assert h["postcode"]["fp_top"]["share"] == 0.5
    assert h["postcode"]["text"] == "postcode FN 3: 67% empty_pred (2); FP 2: 50% hallucinated"
    assert "gold_unreachable" not in h["postcode"]


def test_headline_counts_errors_no_prediction_can_avoid():
    """README: gold_unreachable is counted beside each tag in the headline, per kind."""
    rows = [
        ("Buffalo, NY 14201, U.S.A.", {"country": "U.S.A."}, {"country": "U.S.A"}),
        ("Buffalo, NY 14201, USA.", {"country": "USA"}, {"country": "US"}),
        ("Buffalo, NY 14201, U.S.A.", {"country": "U.S.A."}, {}),
    ]
    (h,) = diagnose(run(rows, ["country"], "runtime")).headline
    assert h["gold_unreachable"] == {"fn": 2, "fp": 1}
    assert h["text"].endswith(" — gold unreachable under the profile: 2 FN, 1 FP")
    (h,) = diagnose(run(rows[2:], ["country"], "runtime")).headline
    assert h["gold_unreachable"] == {"fn": 1, "fp": 0} and h["text"].endswith("profile: 1 FN")


def test_headline_reads_the_buckets_of_the_all_view():
    d = diagnose(run())
    d.buckets["excluding_adversarial"] = d.buckets["adversarial_only"] = None
    assert headline(d) == d.headline


def test_examples_are_seeded_capped_and_in_print_order():
    """§10.2: one RNG seeded once, random.sample(category list, min(k, n)) in print order, categories by
    count descending; the same seed gives the same examples."""
    rows = [(f"Paris {75000 + i}", {"postcode": str(75000 + i)}, {}) for i in range(6)]
    rows += [(f"Lyon {69000 + i}", {"postcode": str(69000 + i)}, {"postcode": "7"}) for i in range(2)]
    d = diagnose(run(rows, ["postcode"]), scheme="upstream")
    out = upstream_console(d, examples=3, seed=11)
    assert out == upstream_console(d, examples=3, seed=11)
    rng = random.Random(11)  # FALSE POSITIVES print first, then FALSE NEGATIVES by count
    fp = rng.sample([str(69000 + i) for i in range(2)], 2)
    empty = rng.sample([str(75000 + i) for i in range(6)], 3)
    other = rng.sample([str(69000 + i) for i in range(2)], 2)  # fewer than 3: all of them
    golds = [ln.split("'")[1] for ln in out.splitlines() if ln.strip().startswith("gold :")]
    preds = [ln.split("'")[1] for ln in out.splitlines() if ln.strip().startswith("pred :") and "'7'" in ln]
    lines = out.splitlines()
    assert "FALSE POSITIVES (2 total)" in lines and "FALSE NEGATIVES (8 total)" in lines
    fn_at = lines.index("FALSE NEGATIVES (8 total)")
    cats = [ln.split()[0] for ln in lines[fn_at:] if ln.startswith("  ") and not ln.startswith("    ")]
    assert cats[0] == "empty_pred" and lines[fn_at + 1] == "  empty_pred        6 (75.0%)"
    assert len(golds) == 2 + 3 + 2 and golds[:2] == fp and preds == ["7"] * 4
    assert golds[2:5] == empty and golds[5:] == other
    assert [ln for ln in upstream_console(d, examples=0).splitlines() if "gold :" in ln] == []


def test_console_examples_follow_the_seed_and_count():
    rows = [(f"Paris {75000 + i}", {"postcode": str(75000 + i)}, {}) for i in range(20)]
    d = diagnose(run(rows, ["postcode"]))
    golds = lambda text: [ln for ln in text.splitlines() if "gold :" in ln]  # noqa: E731
    assert len(golds(console(d, examples=5))) == 5 and len(golds(console(d, examples=50))) == 20
    assert console(d, seed=3) == console(d, seed=3)
    assert {tuple(golds(console(d, seed=s))) for s in range(5)} != {tuple(golds(console(d, seed=0)))}


def test_console_marks_what_it_cannot_score_and_filtered_runs():
    rows = [("a", {}, {"region": "X"}), ("Lyon 69001", {"postcode": "69001"}, {}, "adversarial.jsonl")]
    d = diagnose(run(rows, ["postcode", "region"]))
    text = console(d)
    pc = next(ln for ln in text.splitlines() if ln.startswith("postcode "))
    rg = next(ln for ln in text.splitlines() if ln.startswith("region "))
    assert pc.split()[1:] == ["0.0000", "—", "0.0000", "—", "1"]  # nothing to score excluding adversarial
    assert rg.split()[1:4] == ["FP-only", "FP-only", "—"]
    assert "filtered to --tags" not in text and "macro F1" in text
    ft = console(diagnose(run(rows, ["postcode", "region"]), tags="region"))
    assert "filtered to --tags region (1 of 2 tags)" in ft and "macro F1 (all tags)" in ft


def test_delta_is_excluding_minus_all_and_none_when_either_view_is_unscored():
    scored = {"support": 2, "tp": 1, "fp": 0, "f1": 0.8}
    other = {"support": 3, "tp": 1, "fp": 1, "f1": 0.5}
    empty = {"support": 0, "tp": 0, "fp": 0, "f1": 0.0}
    assert _delta(scored, other) == 0.3 and _delta(other, scored) == -0.3
    assert _delta(empty, scored) is None and _delta(scored, empty) is None and _delta(empty, empty) is None
    assert _delta({**scored, "f1": 1 / 3}, {**other, "f1": 0.0}) == 0.333333


def test_categories_follow_the_scheme():
    assert diagnose(run()).categories == DEFAULT_CATEGORIES
    assert diagnose(run(), scheme="upstream").categories == UPSTREAM_CATEGORIES


def test_error_rows_one_per_error_with_entry_fields():
    r = run()
    r.predictions[0]["country"] = None
    d = diagnose(r)
    rows = error_rows(d)
    assert len(rows) == len(d.errors) == 10
    assert all(list(x) == ERROR_COLUMNS for x in rows)
    first = rows[0]
    assert first == {"id": "us.jsonl:1", "file": "us.jsonl", "line": 1, "country": "", "adversarial": False, "non_latin": False,
                     "tag": "postcode", "kind": "FN", "primary": "empty_pred", "categories": "empty_pred", "other_tag": "",
                     "gold": "12345", "pred": "", "raw": "Springfield 12345"}
    assert [x["adversarial"] for x in rows] == [False, False, False, True, True, False, False, False, False, False]
    region = next(x for x in rows if x["tag"] == "region")
    assert region["categories"] == "hallucinated;num_confused" and region["other_tag"] == "postcode" and region["country"] == "US"
    moscow = [x for x in rows if x["raw"].startswith("Москва")]
    assert len(moscow) == 2 and all(x["non_latin"] and not x["adversarial"] for x in moscow)
    nl = error_rows(diagnose(r, adversarial="non-latin"))
    assert [x["adversarial"] for x in nl if x["raw"].startswith("Москва")] == [True, True]


def test_error_table_csv_header_and_rows(tmp_path):
    d = diagnose(run())
    files = error_tables(d, tmp_path / "r.errors.csv", parquet=False)
    assert list(files) == [tmp_path / "r.errors.csv"]
    got = list(csv.reader(io.StringIO(files[tmp_path / "r.errors.csv"].decode("utf-8"))))
    assert got[0] == ERROR_COLUMNS and len(got) == 11
    assert got[1] == ["us.jsonl:1", "us.jsonl", "1", "US", "False", "False", "postcode", "FN", "empty_pred", "empty_pred", "", "12345", "",
                      "Springfield 12345"]
    assert ERROR_COLUMNS == ["id", "file", "line", "country", "adversarial", "non_latin", "tag", "kind", "primary", "categories",
                             "other_tag", "gold", "pred", "raw"]
    written = write_error_table(d, tmp_path / "w.errors.csv", parquet=False)
    assert written == [tmp_path / "w.errors.csv"] and written[0].read_bytes() == files[tmp_path / "r.errors.csv"]


def test_error_table_parquet_types_and_values(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    d = diagnose(run())
    written = write_error_table(d, tmp_path / "r.errors.csv")
    assert [p.name for p in written] == ["r.errors.csv", "r.errors.parquet"]
    t = pq.read_table(written[1])
    assert t.column_names == ERROR_COLUMNS
    types = {f.name: str(f.type) for f in t.schema}
    assert types["line"] == "int64" and types["adversarial"] == types["non_latin"] == "bool" and types["raw"] == "large_string"
    assert t.to_pylist() == error_rows(d)


def test_an_empty_error_table_still_has_its_header(tmp_path):
    d = diagnose(run([("Paris 75008", {"postcode": "75008"}, {"postcode": "75008"})], ["postcode"]))
    files = error_tables(d, tmp_path / "e.csv", parquet=False)
    assert files[tmp_path / "e.csv"].decode() == ",".join(ERROR_COLUMNS) + "\n"
    assert d.headline == [] and d.buckets["all"]["postcode"]["FN"]["total"] == 0


def test_upstream_scheme_on_a_case_blind_profile_says_how_its_counts_differ():
    """design.md: either scheme works with either profile; when upstream's case-sensitive counting differs
    from the metrics' count, the warning gives both counts, FN and FP each in its place."""
    rows = [("Paris 75008", {"locality": "Paris"}, {"locality": "paris"}), ("Lyon", {}, {"locality": "Lyon"})]
    r = run(rows, ["locality"], "runtime")
    r.meta["warnings"] = ["from the run"]
    (first, note) = diagnose(r, scheme="upstream").warnings
    assert first == "from the run"
    assert "1 FN and 2 FP here, against 0 and 1 in the metrics of profile runtime" in note
    assert diagnose(r).warnings == ["from the run"]  # the default scheme counts as the metrics do
    same = run([("Lyon", {"locality": "Lyon"}, {"locality": "Nice"}), ("Lyon", {}, {"locality": "Lyon"})], ["locality"], "runtime")
    assert diagnose(same, scheme="upstream").warnings == []  # the counts agree: nothing to say
    assert diagnose(run(rows, ["locality"]), scheme="upstream").warnings == []  # upstream-eval compares as upstream does


def test_upstream_scheme_says_when_upstreams_two_scripts_count_apart():
    """A gold value of only spaces: eval.py (profile upstream-eval) keeps it, so "Paris" against it is an
    FP and an FN; diagnose_regression.py strips it to nothing, an FP with empty gold. Both are reproduced,
    and the difference is said (it was silent because the profile compares exactly)."""
    r = run([("Paris", {"locality": "   "}, {"locality": "Paris"})], ["locality"])
    d = diagnose(r, scheme="upstream")
    m = d.metrics["all"]["per_tag"]["locality"]
    assert (m["fp"], m["fn"]) == (1, 1)
    assert sorted(e.kind for e in d.errors) == ["FP"]
    (note,) = d.warnings
    assert "0 FN and 1 FP here, against 1 and 1 in the metrics of profile upstream-eval" in note
    assert "a gold value of only spaces is a gold value there" in note


def test_secondary_categories_sort_by_count_then_name():
    rows = [
        ("Москва 1", {"locality": "Москва"}, {"locality": "Моск"}),  # other + non_latin
        ("100 MAIN ST, TYLER TX", {"locality": "Tyler"}, {"locality": "TYLER"}),  # case_only + gold_unreachable
    ]
    fn = diagnose(run(rows, ["locality"])).buckets["all"]["locality"]["FN"]
    assert list(fn["secondary"].items()) == [("gold_unreachable", 1), ("non_latin", 1)]  # a tie: by name, not first seen
    rows.insert(1, ("Киев 2", {"locality": "Киев"}, {"locality": "Ки"}))
    fn = diagnose(run(rows, ["locality"])).buckets["all"]["locality"]["FN"]
    assert list(fn["secondary"].items()) == [("non_latin", 2), ("gold_unreachable", 1)]


def test_tags_that_took_a_number_sort_by_count_then_name_and_show_in_the_console():
    rows = [("St 90210 1", {"postcode": "90210"}, {"postcode": "1", "region": "90210"}),
            ("St 90211 1", {"postcode": "90211"}, {"postcode": "1", "house_number": "90211"})]
    tags = ["postcode", "region", "house_number"]
    d = diagnose(run(rows, tags))
    assert list(d.buckets["all"]["postcode"]["FN"]["num_confused_with"].items()) == [("house_number", 1), ("region", 1)]
    rows.append(("St 90212 1", {"postcode": "90212"}, {"postcode": "1", "region": "90212"}))
    d = diagnose(run(rows, tags))
    assert list(d.buckets["all"]["postcode"]["FN"]["num_confused_with"].items()) == [("region", 2), ("house_number", 1)]
    lines = console(d).splitlines()
    at = lines.index("FALSE NEGATIVES (3 total)")
    assert lines[at + 1] == "  (numeric value taken by/from: region 2, house_number 1)"
    at = lines.index("FALSE POSITIVES (2 total)")
    assert lines[at + 1: at + 3] == ["  (also, as a secondary category: num_confused 2)", "  (numeric value taken by/from: postcode 2)"]
    assert "(also, as a secondary" not in upstream_console(d)  # upstream's layout has no annotations


def test_example_defaults_are_upstreams_three_and_seed_42():
    """§10.2: --examples-per-bucket 3, --seed 42."""
    rows = [(f"Paris {75000 + i}", {"postcode": str(75000 + i)}, {}) for i in range(10)]
    d = diagnose(run(rows, ["postcode"]), scheme="upstream")
    assert upstream_console(d) == upstream_console(d, examples=3, seed=42)
    assert sum("gold :" in ln for ln in upstream_console(d).splitlines()) == 3
    dd = diagnose(run(rows, ["postcode"]))
    assert console(dd) == console(dd, examples=3, seed=42)


def test_error_tables_write_parquet_by_default_and_csv_alone_without_pyarrow(tmp_path, monkeypatch):
    """README: `<run>.errors.parquet` beside the CSV when pyarrow is installed, the CSV alone otherwise."""
    import sys

    pytest.importorskip("pyarrow.parquet")
    d = diagnose(run())
    assert list(error_tables(d, tmp_path / "r.errors.csv")) == [tmp_path / "r.errors.csv", tmp_path / "r.errors.parquet"]
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    files = error_tables(d, tmp_path / "r.errors.csv")
    assert list(files) == [tmp_path / "r.errors.csv"] and files[tmp_path / "r.errors.csv"].startswith(b"id,file,line,")


def test_console_headline_lists_every_tag_with_errors_or_says_none():
    text = console(diagnose(run())).splitlines()
    at = text.index("headline:")
    assert text[at - 1] == "" and text[at + 1: at + 4] == [
        "  postcode FN 3: 67% empty_pred (2); FP 2: 50% hallucinated",
        "  locality FN 2: 50% case_only (1); FP 2: 50% case_only",
        "  region FN 0; FP 1: 100% hallucinated",
    ]
    assert text[at + 4] == "" and text[at + 5].startswith("tag ")
    clean = console(diagnose(run([("Paris 75008", {"postcode": "75008"}, {"postcode": "75008"})], ["postcode"]))).splitlines()
    at = clean.index("headline:")
    assert clean[at + 1: at + 3] == ["  no errors", ""]


def test_console_delta_needs_both_views_scored_and_the_fp_only_legend_only_when_used():
    from mailwoman_eval.console import FP_ONLY_LEGEND

    rows = [("Paris 75008", {"postcode": "75008"}, {"postcode": "75008"}), ("Lyon 69001", {"postcode": "69001"}, {})]
    text = console(diagnose(run(rows, ["postcode"]))).splitlines()
    pc = next(ln for ln in text if ln.startswith("postcode "))
    assert pc.split()[1:] == ["0.6667", "0.6667", "—", "+0.0000", "2"]  # no adversarial rows: Δ of the two scored views
    assert text[text.index("headline:") + 3].split()[:3] == ["tag", "F1", "all"]
    assert FP_ONLY_LEGEND not in text
    text = console(diagnose(run(rows + [("Main", {}, {"region": "Main"})], ["postcode", "region"]))).splitlines()
    assert FP_ONLY_LEGEND in text and text.index(FP_ONLY_LEGEND) == next(i for i, ln in enumerate(text) if ln.startswith("macro F1")) + 1


def test_upstream_scheme_console_keeps_upstreams_layout_without_annotations():
    """README: --buckets upstream prints upstream's layout so the two diff; the annotations are the default scheme's."""
    rows = [("St 90210 1", {"postcode": "90210"}, {"postcode": "1", "region": "90210"}),
            ("Москва 1", {"locality": "Москва"}, {"locality": "Моск"})]
    tags = ["postcode", "region", "locality"]
    up = diagnose(run(rows, tags), scheme="upstream")
    text = console(up)
    assert "  (also" not in text and "  (numeric" not in text
    assert text.endswith(upstream_console(up))
    assert "  (numeric value taken by/from: region 1)" in console(diagnose(run(rows, tags))).splitlines()
