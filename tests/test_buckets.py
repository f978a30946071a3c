"""Every category rule and precedence step, both schemes (design.md Decisions; upstream-formats.md §10.2)."""

import pytest
from runfactory import make_run

from mailwoman_eval.buckets import bucket_errors, classify_default, classify_upstream, is_bio_slip
from mailwoman_eval.diagnose import diagnose, to_json, upstream_console
from mailwoman_eval.profiles import RUNTIME, UPSTREAM_EVAL

# ---- upstream scheme: first match wins, case by case ---------------------------------------------


@pytest.mark.parametrize(
    "raw,gold,pred,tag,want",
    [
        ("Rue Édith, 75008 Paris", "75008", "", "postcode", "non_latin"),  # any char > 127 wins over everything
        ("Paris 75008", "75008", "", "postcode", "empty_pred"),
        ("PARIS 75008", "PARIS", "Paris", "locality", "case_only"),
        ("Main St, Paris", "Main St", "Main St,", "street", "bio_slip"),  # substring
        ("X, 7647", "76470", "7647", "postcode", "bio_slip"),  # substring beats num_confused
        ("(Paris)", "Paris", "(Paris)", "locality", "bio_slip"),
        ("22 Rue Jasmin 47110", "47110", "22", "postcode", "num_confused"),
        ("22 Rue Jasmin 47110", "47110", "22", "house_number", "other"),  # num_confused is postcode-only
        ("Paris", "", "Paris", "locality", "other"),  # FP with empty gold
        ("Lyon Paris", "Paris", "Lyon", "locality", "other"),
    ],
)
def test_upstream_classify_first_match(raw, gold, pred, tag, want):
    assert classify_upstream(raw, gold, pred, tag) == want


def test_upstream_edge_rule_uses_unicode_word_chars():
    # re's \w is Unicode-aware on str: "é" is a word char, so nothing is stripped from "é."
    assert classify_upstream("Ab", "é", "é.", "x") == "bio_slip"  # (also a substring)
    assert classify_upstream("Ab", "Ré", "-Ré-", "x") == "bio_slip"


# ---- default scheme: primary by precedence + all categories ------------------------------------


def cls(kind, gold, pred, raw="x", pred_all=None, gold_all=None, tag="postcode", fold=False):
    return classify_default(tag, kind, gold, pred, raw, pred_all or {}, gold_all or {}, fold)


def test_empty_pred_is_primary_and_records_the_tag_that_took_the_value():
    prim, cats, other = cls("FN", "75008", "", pred_all={"house_number": "75008"})
    assert prim == "empty_pred" and cats == ("empty_pred", "num_confused") and other == "house_number"


def test_hallucinated_is_a_fp_with_no_gold():
    assert cls("FP", "", "Paris", tag="locality")[0] == "hallucinated"


def test_hallucinated_numeric_taken_from_another_tag():
    prim, cats, other = cls("FP", "", "22", gold_all={"house_number": "22"})
    assert (prim, other) == ("hallucinated", "house_number") and "num_confused" in cats


def test_case_only_precedes_bio_slip():
    assert cls("FN", "PARIS", "Paris", tag="locality")[0] == "case_only"


@pytest.mark.parametrize(
    "pred,gold",
    [
        (", 7647", "7647"),  # leading punctuation
        ("Paris.", "Paris"),  # trailing punctuation
        ("Main St, Springfield", "Main St"),  # extra word at the end
        ("Rue de la Paix", "de la Paix"),  # missing... extra word at the start
        ("Springfield", "Springfield Plaza"),  # missing word
        ("12 Main St Apt", "Main St"),  # words added at both ends
        ("12, Main St - Springfield", "Main St"),  # punctuation where the added words join
        ("ஸ்பிரிங்ஸ்", "ராக் ஸ்பிரிங்ஸ்"),  # a word missing at the start (en-us run)
        ("12", "№12"),  # a symbol at the edge counts as punctuation, as "#" does
        ("Paris", "+Paris|"),
    ],
)
def test_bio_slip_cases(pred, gold):
    assert is_bio_slip(pred, gold, fold=False)
    assert cls("FN", gold, pred, tag="street")[0] == "bio_slip"


@pytest.mark.parametrize("pred,gold", [
    ("Mai", "Main"), ("Main Rd", "Main St"), ("St Main", "Main St"),
    # punctuation inside the shared words is not at an edge (design.md): these are `other`
    ("St. Paul", "St Paul"), ("12, Main St", "12 Main St"), ("St. Paul, MN", "St Paul"),
    # a combining mark is part of its word, not edge punctuation (tiny and en-us runs, us.jsonl:1967:
    # the runtime's trimBoundary cut the final virama): another spelling, `other`
    ("ವಿಂಚೆಸ್ಟರ", "ವಿಂಚೆಸ್ಟರ್"), ("ஸ்பிரிங்ஸ", "ராக் ஸ்பிரிங்ஸ்"), ("Cafe", "Cafe\u0301"), ("Cafe\u0301 Paris", "Cafe"),
])
def test_not_bio_slip(pred, gold):
    assert not is_bio_slip(pred, gold, fold=False)


def test_num_confused_for_any_numeric_pair():
    prim, cats, _ = cls("FN", "05440", "64", tag="postcode")
    assert prim == "num_confused"
    assert cls("FP", "4B", "12", tag="unit")[0] == "other"  # "4B" is not numeric
    assert cls("FN", "1600", "16-00", tag="house_number")[0] == "num_confused"


def test_other_when_nothing_applies():
    assert cls("FN", "Lyon", "Paris", tag="locality") == ("other", ("other",), None)


def test_non_latin_is_a_flag_never_primary_and_accents_are_latin():
    prim, cats, _ = cls("FN", "Москва", "", raw="Москва, Russia", tag="locality")
    assert prim == "empty_pred" and cats[-1] == "non_latin"
    _, cats, _ = cls("FN", "Évry", "", raw="91000 Évry", tag="locality")
    assert "non_latin" not in cats


def test_default_errors_follow_the_profile_comparison():
    run_rows = [("PARIS 75008", {"locality": "PARIS"}, {"locality": "Paris"})]
    up = bucket_errors(make_run(run_rows, ["locality"]).predictions, ["locality"], UPSTREAM_EVAL)
    rt = bucket_errors(make_run(run_rows, ["locality"], "runtime").predictions, ["locality"], RUNTIME)
    assert [(e.kind, e.primary) for e in up] == [("FP", "case_only"), ("FN", "case_only")]
    assert rt == []  # case-insensitive match: not an error under runtime


def test_errors_on_gold_no_prediction_can_reach_carry_a_flag():
    """Runtime always trims a trailing '.', so gold 'U.S.A.' is never matched; upstream-eval
    compares exactly, so gold 'Tyler' in raw 'TYLER' is never matched. Those errors keep their
    category (bio_slip, case_only) and are flagged gold_unreachable, never primary."""
    from mailwoman_eval.buckets import unreachable_reason

    rows = [("Buffalo, NY 14201, U.S.A.", {"country": "U.S.A."}, {"country": "U.S.A"}),
            ("Buffalo, NY 14201, USA.", {"country": "USA"}, {"country": "US"})]
    errs = bucket_errors(make_run(rows, ["country"], "runtime").predictions, ["country"], RUNTIME)
    assert [(e.entry, e.kind, e.primary, "gold_unreachable" in e.categories) for e in errs] == [
        (0, "FP", "bio_slip", True), (0, "FN", "bio_slip", True), (1, "FP", "other", False), (1, "FN", "other", False)]
    rows = [("100 MAIN ST, TYLER TX", {"locality": "Tyler"}, {"locality": "TYLER"})]
    (fp, fn) = bucket_errors(make_run(rows, ["locality"]).predictions, ["locality"], UPSTREAM_EVAL)
    assert fp.primary == fn.primary == "case_only" and fp.categories == fn.categories == ("case_only", "gold_unreachable")
    assert unreachable_reason("U.S.A.", "x U.S.A.", RUNTIME) == "leading/trailing non-word chars are always trimmed"
    assert unreachable_reason("Tyler", "TYLER TX", UPSTREAM_EVAL) == "case differs from raw"
    assert unreachable_reason("Tyler", "TYLER TX", RUNTIME) is None
    assert unreachable_reason("  ", "TYLER TX", RUNTIME) == unreachable_reason("  ", "x", UPSTREAM_EVAL) == "only whitespace"



def test_a_wrong_prediction_for_whitespace_only_gold_is_not_a_hallucination():
    """Gold "   " is a gold value (§10.1 counts it: FP + FN on any prediction); the FP was filed
    as `hallucinated` (FP with no gold) while its FN twin, the same error, was `other`."""
    rows = [("Paris 75008", {"locality": "   "}, {"locality": "Paris"})]
    for profile in (RUNTIME, UPSTREAM_EVAL):
        errs = bucket_errors(make_run(rows, ["locality"], profile.name).predictions, ["locality"], profile)
        assert [(e.kind, e.primary, "gold_unreachable" in e.categories) for e in errs] == [("FP", "other", True), ("FN", "other", True)]
    rows = [("Paris 75008", {}, {"locality": "Paris"})]  # no gold at all: still a hallucination
    (fp,) = bucket_errors(make_run(rows, ["locality"]).predictions, ["locality"], UPSTREAM_EVAL)
    assert fp.primary == "hallucinated"

# ---- upstream console layout, byte for byte ---------------------------------------------------


def test_upstream_console_layout_matches_diagnose_regression():
    rows = [
        ("Paris 75008", {"postcode": "75008", "locality": "Paris"}, {"locality": "Paris"}),
        ("Lyon 69001", {"postcode": "69001", "locality": "Lyon"}, {"postcode": "69001", "locality": "Lyo"}),
        ("22 Rue X 47110", {"postcode": "47110"}, {"postcode": "22"}),
    ]
    run = make_run(rows, ["locality", "postcode"])
    d = diagnose(run, scheme="upstream")
    got = upstream_console(d, examples=3, seed=42)
    want = (
        "\n=== TAG: locality ===\n"
        "\nFALSE POSITIVES (1 total)\n"
        "  bio_slip          1 (100.0%)\n"
        "    - raw  : Lyon 69001\n"
        "      gold : 'Lyon'\n"
        "      pred : 'Lyo'\n"
        "\nFALSE NEGATIVES (1 total)\n"
        "  bio_slip          1 (100.0%)\n"
        "    - raw  : Lyon 69001\n"
        "      gold : 'Lyon'\n"
        "      pred : 'Lyo'\n"
        "\n=== TAG: postcode ===\n"
        "\nFALSE POSITIVES (1 total)\n"
        "  num_confused      1 (100.0%)\n"
        "    - raw  : 22 Rue X 47110\n"
        "      gold : '47110'\n"
        "      pred : '22'\n"
        "\nFALSE NEGATIVES (2 total)\n"
        "  empty_pred        1 (50.0%)\n"
        "    - raw  : Paris 75008\n"
        "      gold : '75008'\n"
        "      pred : ''\n"
        "  num_confused      1 (50.0%)\n"
        "    - raw  : 22 Rue X 47110\n"
        "      gold : '47110'\n"
        "      pred : '22'\n"
    )
    assert got == want


def test_upstream_scheme_reports_each_error_under_its_one_category(tmp_path):
    """Upstream's scheme gives one category per error: the JSON's all_categories equals primary
    (it was empty), and with the HTML written stdout is still upstream's layout alone (the paths
    go to stderr), so it diffs against diagnose_regression.py's output."""
    from click.testing import CliRunner
    from runfactory import save_run

    from mailwoman_eval.cli import main
    from mailwoman_eval.diagnose import to_json

    rows = [
        ("Paris 75008", {"postcode": "75008", "locality": "Paris"}, {"locality": "Paris"}),
        ("22 Rue X 47110", {"postcode": "47110"}, {"postcode": "22"}),
    ]
    run = make_run(rows, ["locality", "postcode"])
    fn = to_json(diagnose(run, scheme="upstream"))["buckets"]["all"]["postcode"]["FN"]
    assert fn["primary"] == fn["all_categories"] == {"empty_pred": 1, "num_confused": 1} and fn["secondary"] == {}
    d = save_run(run, tmp_path / "run")
    plain = CliRunner().invoke(main, ["diagnose", "--run", str(d), "--buckets", "upstream", "--no-html"])
    with_html = CliRunner().invoke(main, ["diagnose", "--run", str(d), "--buckets", "upstream", "--out", str(tmp_path / "r.html")])
    assert plain.exit_code == with_html.exit_code == 0
    assert with_html.stdout == plain.stdout and "=== TAG: postcode ===" in plain.stdout
    assert "report: " in with_html.stderr
    table = (tmp_path / "r.errors.csv").read_text().splitlines()
    assert any(line.split(",")[8:10] == ["empty_pred", "empty_pred"] for line in table[1:])


def test_upstream_scheme_on_a_runtime_run_says_its_counts_are_not_the_metrics(tmp_path):
    """Upstream's rule compares case-sensitively: on a runtime run, "PARIS" for gold "Paris" is a
    TP in the metrics and an FP + FN in the upstream buckets. Every output says so, with the counts."""
    from click.testing import CliRunner
    from runfactory import save_run

    from mailwoman_eval.cli import main
    from mailwoman_eval.diagnose import to_json

    rows = [("PARIS 75008", {"locality": "Paris", "postcode": "75008"}, {"locality": "PARIS", "postcode": "75008"})]
    note = "--buckets upstream counts errors as diagnose_regression.py does"
    runtime = make_run(rows, ["locality", "postcode"], "runtime")
    d = diagnose(runtime, scheme="upstream")
    said = [w for w in d.warnings if w.startswith(note)]
    assert said and "1 FN and 1 FP here, against 0 and 0 in the metrics of profile runtime" in said[0]
    assert said[0] in to_json(d)["warnings"]
    assert not [w for w in diagnose(runtime).warnings if w.startswith(note)]  # the default scheme counts as the metrics do
    assert not [w for w in diagnose(make_run(rows, ["locality", "postcode"]), scheme="upstream").warnings if w.startswith(note)]
    r = CliRunner().invoke(main, ["diagnose", "--run", str(save_run(runtime, tmp_path / "run")), "--buckets", "upstream",
                                  "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0 and note in r.stderr and note not in r.stdout
    assert note in (tmp_path / "r.html").read_text(encoding="utf-8")


def test_upstream_sampling_consumes_the_rng_in_print_order():
    import random

    rows = [(f"Paris {75000 + i}", {"postcode": str(75000 + i)}, {}) for i in range(10)]
    d = diagnose(make_run(rows, ["postcode"]), scheme="upstream")
    got = upstream_console(d, examples=3, seed=7)
    random.seed(7)
    picked = random.sample([str(75000 + i) for i in range(10)], 3)
    assert [ln.split("'")[1] for ln in got.splitlines() if ln.strip().startswith("gold :")] == picked


def test_three_views_and_delta():
    rows = [
        ("Paris 75008", {"postcode": "75008"}, {"postcode": "75008"}),
        ("Lyon 69001", {"postcode": "69001"}, {}, "adversarial.jsonl"),
    ]
    d = diagnose(make_run(rows, ["postcode"]))
    assert d.metrics["all"]["per_tag"]["postcode"]["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert d.metrics["excluding_adversarial"]["per_tag"]["postcode"]["f1"] == 1.0
    assert d.metrics["adversarial_only"]["per_tag"]["postcode"]["f1"] == 0.0
    assert d.buckets["adversarial_only"]["postcode"]["FN"]["primary"] == {"empty_pred": 1}
    assert d.buckets["excluding_adversarial"]["postcode"]["FN"]["total"] == 0
    assert d.headline[0]["fn_top"]["category"] == "empty_pred"
    assert to_json(d)["delta_excluding_minus_all"] == {"postcode": pytest.approx(1 / 3, abs=1e-6)}


def test_no_delta_where_a_view_has_nothing_to_score():
    """Only adversarial rows: the excluding view is empty, and its 0/0 F1 minus the all view's F1
    was written as a delta of -F1 (the console and the HTML show "—")."""
    rows = [("Lyon 69001", {"postcode": "69001"}, {}, "adversarial.jsonl")]
    assert to_json(diagnose(make_run(rows, ["postcode"])))["delta_excluding_minus_all"] == {"postcode": None}


def test_tags_naming_no_tag_are_refused_and_repeats_shown_once():
    from mailwoman_eval.diagnose import select_tags
    from mailwoman_eval.errors import MwevalError

    run = make_run([("Paris 75008", {"postcode": "75008"}, {})], ["postcode", "locality"])
    assert select_tags(run, "locality, postcode,locality") == ["locality", "postcode"]
    assert select_tags(run, None) == select_tags(run, "") == ["postcode", "locality"]
    with pytest.raises(MwevalError, match="names no tag"):
        select_tags(run, " , ")


def test_non_latin_adversarial_mode_moves_rows_into_the_adversarial_view():
    rows = [("Москва 101000", {"postcode": "101000"}, {}), ("Paris 75008", {"postcode": "75008"}, {"postcode": "75008"})]
    run = make_run(rows, ["postcode"])
    assert diagnose(run).view_mask["adversarial_only"].sum() == 0
    assert diagnose(run, adversarial="non-latin").view_mask["adversarial_only"].tolist() == [True, False]


def test_error_table_parquet_holds_the_csv_rows(tmp_path):
    import csv

    pq = pytest.importorskip("pyarrow.parquet")
    from mailwoman_eval.diagnose import ERROR_COLUMNS, write_error_table

    rows = [
        ("Москва 101000", {"postcode": "101000", "locality": "Москва"}, {"locality": "101000"}),
        ('Paris "8e" 75008', {"postcode": "75008"}, {"postcode": "75008", "locality": "Paris"}, "adversarial.jsonl"),
    ]
    d = diagnose(make_run(rows, ["postcode", "locality"]))
    written = write_error_table(d, tmp_path / "e.errors.csv")
    assert [p.name for p in written] == ["e.errors.csv", "e.errors.parquet"]
    with open(written[0], newline="", encoding="utf-8") as f:
        from_csv = list(csv.DictReader(f))
    table = pq.read_table(written[1])
    assert table.column_names == ERROR_COLUMNS
    assert str(table.schema.field("line").type) == "int64" and str(table.schema.field("adversarial").type) == "bool"
    from_parquet = table.to_pylist()
    assert len(from_parquet) == len(from_csv) >= 3
    as_text = lambda v: "" if v is None else str(v)  # noqa: E731  (csv writes None as "", bools as True/False)
    assert [{k: as_text(v) for k, v in r.items()} for r in from_parquet] == from_csv


def test_a_report_of_some_tags_does_not_replace_the_full_report(tmp_path, monkeypatch):
    """`diagnose --run R --tags postcode` wrote reports/<run>.html, the name of the full report."""
    from click.testing import CliRunner
    from runfactory import save_run

    from mailwoman_eval.cli import main

    monkeypatch.chdir(tmp_path)
    rows = [("Paris 75008", {"postcode": "75008", "locality": "Paris"}, {"locality": "Paris"})]
    run = save_run(make_run(rows, ["locality", "postcode"]), tmp_path / "run")
    assert CliRunner().invoke(main, ["diagnose", "--run", str(run), "-q"]).exit_code == 0
    full = (tmp_path / "reports" / "run.html").read_bytes()
    r = CliRunner().invoke(main, ["diagnose", "--run", str(run), "--tags", "postcode,locality", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "reports" / "run.html").read_bytes() == full
    assert (tmp_path / "reports" / "run__postcode+locality.html").is_file()
    assert (tmp_path / "reports" / "run__postcode+locality.errors.csv").is_file()


# ---- rules found unpinned by mutation testing ----------------------------------------------------


def test_gold_absent_from_raw_in_any_case_is_unreachable_under_runtime():
    from mailwoman_eval.buckets import unreachable_reason

    assert unreachable_reason("Lyon", "Paris 75008", RUNTIME) == "not in raw"
    assert unreachable_reason("Lyon", "Paris 75008", UPSTREAM_EVAL) == "not in raw"
    assert unreachable_reason("PARIS", "Paris 75008", RUNTIME) is None  # in raw, case aside


def test_bio_slip_folds_case_only_under_a_case_insensitive_profile():
    """design.md bio_slip, "compared case-folded under a case-insensitive profile": on a runtime run
    "PARIS," for gold "Paris" is a trailing-punctuation slip; on an upstream-eval run "paris," for
    gold "Paris" differs in case as well, and is `other`."""
    assert is_bio_slip("PARIS,", "Paris", fold=True) and not is_bio_slip("PARIS,", "Paris", fold=False)
    rows = [("PARIS, 75008", {"locality": "Paris"}, {"locality": "PARIS,"})]
    rt = bucket_errors(make_run(rows, ["locality"], "runtime").predictions, ["locality"], RUNTIME)
    assert [(e.kind, e.primary, e.categories) for e in rt] == [("FP", "bio_slip", ("bio_slip",)), ("FN", "bio_slip", ("bio_slip",))]
    rows = [("paris, 75008", {"locality": "Paris"}, {"locality": "paris,"})]
    up = bucket_errors(make_run(rows, ["locality"]).predictions, ["locality"], UPSTREAM_EVAL)
    assert [(e.kind, e.primary) for e in up] == [("FP", "other"), ("FN", "other")]


@pytest.mark.parametrize("pred,gold", [
    ("Paris", "Paris"), ("PARIS", "Paris"),  # no difference (case-folded): not a slip
    ("Main  St", "Main St"),  # the same words, spaced otherwise: neither edge punctuation nor words added
    ("12 Main (St", "Main St"),  # punctuation on an inner side of the shared words
    ("  ", "Paris"),  # nothing predicted
])
def test_not_bio_slip_folded_or_not(pred, gold):
    assert not is_bio_slip(pred, gold, fold=True)
    assert not is_bio_slip(pred, gold, fold=False)


def test_a_case_only_difference_is_not_also_a_bio_slip_when_folding():
    assert cls("FN", "PARIS", "Paris", tag="locality", fold=True) == ("case_only", ("case_only",), None)


def test_punctuation_on_the_outer_side_of_the_shared_words_is_a_slip():
    """RULES["default"]["bio_slip"]: punctuation may differ on the outer sides of the run of shared
    words, so "(Main" at the start and "St)" at the end match "Main" and "St"; "(St" at the end does not."""
    assert is_bio_slip("12 (Main St", "Main St", fold=False)
    assert is_bio_slip("12 Main St) Springfield", "Main St", fold=False)
    assert not is_bio_slip("12 Main (St", "Main St", fold=False)


def test_num_confused_records_the_tag_that_took_or_owns_the_value():
    """design.md: record which tag took the gold value (FN) / whose gold value a numeric prediction
    is (FP); a tag holding another number is not that tag, and a non-numeric gold's FN is not
    num_confused even when its prediction is another tag's gold."""
    gold_all = {"postcode": "75008", "unit": "22", "locality": "Paris"}
    pred_all = {"unit": "4", "postcode": "22", "house_number": "75 008", "locality": "75008"}
    fp = classify_default("postcode", "FP", "75008", "22", "x", pred_all, gold_all, False)
    fn = classify_default("postcode", "FN", "75008", "22", "x", pred_all, gold_all, False)
    assert fp == ("num_confused", ("num_confused",), "unit")
    assert fn == ("num_confused", ("num_confused",), "house_number")
    assert classify_default("locality", "FP", "Paris", "75008", "x", pred_all, gold_all, False) == (
        "num_confused", ("num_confused",), "postcode")
    assert classify_default("locality", "FN", "Paris", "75008", "x", pred_all, gold_all, False) == ("other", ("other",), None)
    # a numeric gold no other tag predicted, and a numeric prediction that is no other tag's gold: no other_tag
    assert cls("FN", "75008", "", pred_all={"unit": "4", "house_number": "22"}) == ("empty_pred", ("empty_pred",), None)
    assert cls("FP", "", "22", gold_all={"unit": "4", "postcode": "22"}, tag="postcode") == ("hallucinated", ("hallucinated",), None)


@pytest.mark.parametrize("raw,want", [("Paris ~ 75008", "empty_pred"), ("Paris \x7f 75008", "empty_pred"),
                                      ("Paris \x80 75008", "non_latin")])
def test_upstream_non_latin_is_a_code_point_above_127(raw, want):
    assert classify_upstream(raw, "75008", "", "postcode") == want
