"""`mweval eval` end to end through the CLI, on real upstream data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EN_US, GOLDEN_ROOT, REPO, TINY_STEP, TOKENIZER_V010, need_shared

from mailwoman_eval.cli import main


def run_cli(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_upstream_eval_reproduces_the_reference_numbers_on_tiny(tmp_path, shared):
    """upstream-formats.md §10.1 reference: country F1 0.9336 and exact match 0.5711 on full v0.1.2."""
    out = tmp_path / "run"
    r = run_cli(
        "eval", "--ckpt", str(TINY_STEP), "--golden", str(GOLDEN_ROOT / "v0.1.2"), "--tokenizer", str(TOKENIZER_V010),
        "--profile", "upstream-eval", "--out", str(out), "-q",
    )
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "run.json").read_text())
    view = meta["metrics"]["views"]["all"]
    assert view["entries"] == 4561
    assert round(view["per_tag"]["country"]["f1"], 4) == 0.9336
    assert round(view["exact_match"], 4) == 0.5711
    assert meta["profile"]["name"] == "upstream-eval" and meta["decode"]["transitions"] == "learned"
    assert meta["checkpoint"]["labels_source"] == "config.json id2label"
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4561


def test_en_us_package_scores_all_rows_lists_zero_fed_inputs_and_prints_16_tags(tmp_path, shared):
    """Issue acceptance, literally: the default feeding (int8 -> padded to 128)."""
    env = {**os.environ, "MWEVAL_GOLDEN_PATH": str(GOLDEN_ROOT)}
    out = tmp_path / "run"
    p = subprocess.run(
        [sys.executable, "-m", "mailwoman_eval", "eval", "--ckpt", str(EN_US), "--golden", "v0.1.2", "--out", str(out), "-q"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert p.returncode == 0, p.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["counts"]["entries"] == 4561
    assert len(meta["checkpoint"]["zero_fed_inputs"]) == 10
    assert "zero_fed_inputs (10)" in p.stdout
    assert "OUT OF DISTRIBUTION" in p.stderr
    assert meta["decode"]["padding"] == "pad-to-128"
    table = p.stdout.split("---")[-1]
    tag_lines = [ln for ln in p.stdout.splitlines() if ln.split() and ln.split()[0] in meta["tags"]]
    assert len(meta["tags"]) == 16 and len(tag_lines) == 16, table
    # Not quiet (a cache hit now): the warning is printed while the model loads, and not again at the end.
    p = subprocess.run(
        [sys.executable, "-m", "mailwoman_eval", "eval", "--ckpt", str(EN_US), "--golden", "v0.1.2", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("OUT OF DISTRIBUTION") == 1, p.stderr
    assert p.stderr.count("gold tags outside the checkpoint's label set") == 1, p.stderr


def test_out_of_distribution_warning_reaches_every_output(tmp_path, shared):
    """README: zero-fed side channels are listed, and every output says loudly that the numbers are
    out of distribution: the run, diagnose (text and JSON), the scores baseline, compare and gate."""
    run_dir = tmp_path / "run"
    assert run_cli("eval", "--ckpt", str(EN_US), "--golden", str(GOLDEN_ROOT / "v0.1.2"), "--pad-to", "own",
                   "--out", str(run_dir), "-q").exit_code == 0
    ood = "OUT OF DISTRIBUTION: 10 side-channel inputs are zero-fed"
    r = run_cli("diagnose", "--run", str(run_dir), "--no-html", "-q")
    assert r.stderr.splitlines()[0].startswith("warning: " + ood), r.stderr[:500]  # the loudest first, on stderr
    r = run_cli("diagnose", "--run", str(run_dir), "--no-html", "--json", "-q")
    assert any(w.startswith(ood) for w in json.loads(r.output)["warnings"])
    scores = tmp_path / "scores.json"
    assert run_cli("export-scores", "--run", str(run_dir), "--out", str(scores)).exit_code == 0
    doc = json.loads(scores.read_text())
    assert len(doc["checkpoint"]["zero_fed_inputs"]) == 10 and any(w.startswith(ood) for w in doc["warnings"])
    r = run_cli("compare", str(scores), str(run_dir), "--out", str(tmp_path / "cmp"), "--resamples", "1000", "-q")
    assert r.exit_code == 0, r.output
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert f"**base `en-us-10.0.0`: {ood}" in md and f"**cand `en-us-10.0.0`: {ood}" in md
    c = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(c["base"]["zero_fed_inputs"]) == 10 and any(w.startswith(ood) for w in c["cand"]["warnings"])
    r = run_cli("gate", "--baseline", str(scores), "--candidate", str(run_dir), "--out", str(tmp_path / "gate"), "-q")
    assert r.exit_code == 0, r.output
    assert f"**candidate `en-us-10.0.0`: {ood}" in (tmp_path / "gate" / "summary.md").read_text()
    assert any(w.startswith(ood) for w in json.loads((tmp_path / "gate" / "verdict.json").read_text())["baseline"]["warnings"])


def test_rerun_is_byte_identical_apart_from_timings(tmp_path, shared):
    args = ["eval", "--ckpt", str(TINY_STEP), "--golden", str(GOLDEN_ROOT / "v0.1.2" / "test"),
            "--tokenizer", str(TOKENIZER_V010), "-q", "--no-cache"]
    assert run_cli(*args, "--out", str(tmp_path / "a")).exit_code == 0
    assert run_cli(*args, "--out", str(tmp_path / "b")).exit_code == 0
    a = json.loads((tmp_path / "a" / "run.json").read_text())
    b = json.loads((tmp_path / "b" / "run.json").read_text())
    a.pop("timings"), b.pop("timings")
    assert a == b
    assert (tmp_path / "a" / "predictions.jsonl").read_bytes() == (tmp_path / "b" / "predictions.jsonl").read_bytes()


def test_cache_hit_skips_inference_and_gives_the_same_predictions(tmp_path, shared):
    args = ["eval", "--ckpt", str(TINY_STEP), "--golden", str(GOLDEN_ROOT / "v0.1.2" / "test"), "--tokenizer", str(TOKENIZER_V010), "-q"]
    run_cli(*args, "--out", str(tmp_path / "a"))
    r = run_cli(*args, "--out", str(tmp_path / "b"))
    assert "(cache hit)" in r.output
    assert json.loads((tmp_path / "b" / "run.json").read_text())["timings"]["cache"] == "hit"
    assert (tmp_path / "a" / "predictions.jsonl").read_bytes() == (tmp_path / "b" / "predictions.jsonl").read_bytes()

    def meta(d):
        doc = json.loads((tmp_path / d / "run.json").read_text())
        doc.pop("timings")
        return doc

    assert meta("a") == meta("b")  # a hit writes what a miss would, timings apart
    # The same tokenizer bytes by another path: still a hit, and the run records the path it was given.
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "t.model").symlink_to(TOKENIZER_V010)
    args[args.index(str(TOKENIZER_V010))] = str(tmp_path / "tok" / "t.model")
    r = run_cli(*args, "--out", str(tmp_path / "c"))
    assert "(cache hit)" in r.output
    assert meta("c")["tokenizer"]["path"] == str(tmp_path / "tok" / "t.model")
    assert {k: v for k, v in meta("c").items() if k != "tokenizer"} == {k: v for k, v in meta("a").items() if k != "tokenizer"}



def test_the_same_golden_files_by_another_path_hit_the_cache(tmp_path, shared):
    """The key held where MANIFEST.json was found, so a path typed another way missed; a hit
    records the paths this run found, as a miss would."""
    def args(golden, out, *extra):
        return ["eval", "--ckpt", str(TINY_STEP), "--golden", golden, "--tokenizer", str(TOKENIZER_V010), "-q", "--out", str(tmp_path / out), *extra]

    def meta(d):
        doc = json.loads((tmp_path / d / "run.json").read_text())
        doc.pop("timings")
        return doc

    run_cli(*args(str(REPO / "golden" / "demo-v1"), "a"))
    other = str(REPO / "golden" / ".." / "golden" / "demo-v1")
    run_cli(*args(other, "miss", "--no-cache"))
    r = run_cli(*args(other, "hit"))
    assert "(cache hit)" in r.output
    assert meta("hit")["audit"]["manifest"]["manifest"] == other + "/MANIFEST.json"
    assert meta("hit") == meta("miss")


def _cache_entries():
    root = Path(os.environ["MWEVAL_CACHE"]) / "runs"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def test_a_cache_entry_holding_another_checkpoints_run_is_not_served(tmp_path):
    """Two evals of different checkpoints into one --out at once stored one model's run under the
    other's key (store_in_cache read `out` back): a later eval of the first was served the second's
    numbers under its own name. An entry whose run.json is not this key's is a miss, and replaced."""
    args = lambda ckpt, out, *x: ["eval", "--ckpt", ckpt, "--golden", "demo-v1", "-q", "--out", str(tmp_path / out), *x]  # noqa: E731
    assert run_cli(*args("baseline/step-001800", "base")).exit_code == 0
    (entry,) = _cache_entries()
    assert run_cli(*args("regressed/step-002200", "other", "--no-cache")).exit_code == 0
    for name in ("run.json", "predictions.jsonl"):  # what the race left in the cache: a sound run, of the other model
        (entry / name).write_bytes((tmp_path / "other" / name).read_bytes())
    r = run_cli(*args("baseline/step-001800", "again"))
    assert r.exit_code == 0 and "(cache hit)" not in r.output
    again = json.loads((tmp_path / "again" / "run.json").read_text())
    base = json.loads((tmp_path / "base" / "run.json").read_text())
    assert again["timings"]["cache"] == "miss"
    assert again["checkpoint"]["sha256"] == base["checkpoint"]["sha256"]
    assert again["metrics"] == base["metrics"]
    assert json.loads((entry / "run.json").read_text())["checkpoint"]["sha256"] == base["checkpoint"]["sha256"]  # replaced
    r = run_cli(*args("baseline/step-001800", "hit"))
    assert "(cache hit)" in r.output


def test_a_cache_entry_without_its_predictions_hash_is_not_served(tmp_path):
    """load_run checks predictions.jsonl against run.json's hash only when there is one: a cache
    entry without it, cut to 10 rows, was a hit with micro F1 1.0."""
    args = ["eval", "--ckpt", "baseline/step-001800", "--golden", "demo-v1", "-q"]
    assert run_cli(*args, "--out", str(tmp_path / "a")).exit_code == 0
    (entry,) = _cache_entries()
    doc = json.loads((entry / "run.json").read_text())
    doc.pop("predictions_sha256")
    (entry / "run.json").write_text(json.dumps(doc))
    lines = (entry / "predictions.jsonl").read_bytes().split(b"\n")
    (entry / "predictions.jsonl").write_bytes(b"\n".join(lines[:10]) + b"\n")
    r = run_cli(*args, "--out", str(tmp_path / "b"))
    assert r.exit_code == 0 and "(cache hit)" not in r.output
    assert (tmp_path / "b" / "predictions.jsonl").read_bytes() == (tmp_path / "a" / "predictions.jsonl").read_bytes()


def test_the_cache_stores_the_bytes_this_eval_wrote(tmp_path):
    """Not `out` read back after writing: another process may have replaced it by then."""
    from mailwoman_eval.run import write_run

    out = tmp_path / "run"
    meta = {"schema": "x", "counts": {"entries": 1}}
    write_run(out, meta, [{"id": "a"}], cache_key="k" * 32)
    (entry,) = _cache_entries()
    assert entry.name == "k" * 32
    assert (entry / "run.json").read_bytes() == (out / "run.json").read_bytes()
    assert (entry / "predictions.jsonl").read_bytes() == b'{"id":"a"}\n'
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".")]  # no staging dir left
    from mailwoman_eval.fsutil import UMASK

    assert entry.stat().st_mode & 0o777 == 0o777 & ~UMASK  # not mkdtemp's 0700: a shared cache stays readable
    stale = entry.parent / (".x" * 16 + ".killed")  # a store killed mid-way, long ago
    stale.mkdir()
    os.utime(stale, (0, 0))
    write_run(tmp_path / "run2", meta, [{"id": "b"}], cache_key="m" * 32)
    assert not stale.exists()


def test_a_cache_hit_records_where_the_labels_and_the_package_came_from_in_this_run(tmp_path):
    """What run.json says about the checkpoint was served from the cached run: the labels'
    source (--labels, then the sidecar's: the same list) and package.json's version."""
    onnx = REPO / "demo" / "runs" / "baseline" / "onnx"
    m = tmp_path / "m"
    m.mkdir()
    for name in ("model.onnx", "crf-transitions.json"):
        (m / name).symlink_to(onnx / name)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(json.loads((onnx / "crf-transitions.json").read_text())["labels"]))
    tok = str(REPO / "demo" / "runs" / "baseline" / "tokenizer.model")
    base = ["eval", "--ckpt", str(m / "model.onnx"), "--golden", "demo-v1", "--tokenizer", tok, "-q"]

    def meta(d, *extra):
        r = run_cli(*base, *extra, "--out", str(tmp_path / d))
        assert r.exit_code == 0, r.output
        return json.loads((tmp_path / d / "run.json").read_text())

    assert meta("a", "--labels", str(labels))["checkpoint"]["labels_source"] == "--labels"
    b = meta("b")
    assert b["checkpoint"]["labels_source"] == "crf-transitions.json labels"
    assert b["metrics"] == meta("a2", "--labels", str(labels))["metrics"]  # the same list, the same numbers
    (m / "package.json").write_text(json.dumps({"name": "demo", "version": "1.0.0"}))
    assert meta("c")["checkpoint"]["package"]["version"] == "1.0.0"
    (m / "package.json").write_text(json.dumps({"name": "demo", "version": "2.0.0"}))
    assert meta("d")["checkpoint"]["package"]["version"] == "2.0.0"


def test_missing_tokenizer_names_what_was_tried(tmp_path, shared):
    r = CliRunner().invoke(main, ["eval", "--ckpt", str(TINY_STEP), "--golden", str(GOLDEN_ROOT / "v0.1.2" / "test"),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "no tokenizer found" in r.output and "training_state.json" in r.output
    assert not (tmp_path / "o").exists()


def test_unknown_golden_name_lists_the_available_ones(tmp_path):
    need_shared()
    r = CliRunner().invoke(main, ["eval", "--ckpt", str(TINY_STEP), "--golden", "v9.9.9"], env={"MWEVAL_GOLDEN_PATH": str(GOLDEN_ROOT)})
    assert r.exit_code == 2
    assert "unknown golden set 'v9.9.9'" in r.output and "v0.1.2/test" in r.output
    assert "golden pull v9.9.9" not in r.output
    # a pinned upstream version not installed here: where it was looked for, and how to fetch it
    r = CliRunner().invoke(main, ["eval", "--ckpt", str(TINY_STEP), "--golden", "v0.1.2/dev"])
    assert r.exit_code == 2 and "(searched ./data/eval/golden, " in r.output  # MWEVAL_GOLDEN_PATH is not set
    assert "`mweval golden pull v0.1.2` fetches it" in r.output
    # a MWEVAL_GOLDEN_PATH with a typo: its value is in the message; a split a set lacks is named as such
    r = CliRunner().invoke(main, ["eval", "--ckpt", str(TINY_STEP), "--golden", "v0.1.2"], env={"MWEVAL_GOLDEN_PATH": str(tmp_path / "goldne")})
    assert r.exit_code == 2 and f"(searched MWEVAL_GOLDEN_PATH ({tmp_path / 'goldne'}), ./data/eval/golden" in r.output
    r = CliRunner().invoke(main, ["eval", "--ckpt", str(TINY_STEP), "--golden", "demo-v1/dev"])
    assert r.exit_code == 2 and "golden set demo-v1 has no 'dev' split" in r.output


@pytest.mark.parametrize("split,status", [("v0.1.2/dev", "mismatch"), ("v0.1.2/test", "ok"), ("v0.1.2", "ok")])
def test_golden_verify_checks_manifests_and_splits(split, status):
    need_shared()
    r = CliRunner().invoke(main, ["golden", "verify", split], env={"MWEVAL_GOLDEN_PATH": str(GOLDEN_ROOT)})
    assert r.exit_code == 0
    assert ("manifest OK" in r.output) == (status == "ok")
    strict = CliRunner().invoke(main, ["golden", "verify", split, "--strict"], env={"MWEVAL_GOLDEN_PATH": str(GOLDEN_ROOT)})
    assert strict.exit_code == (2 if status == "mismatch" else 0)


def test_golden_validate_counts_case_only_values_apart_and_lists_a_few(shared, tmp_path):
    """On v0.1.2 all 2663 values not in raw are case-only (upstream-formats §4): they were 2663
    undifferentiated lines."""
    r = CliRunner().invoke(main, ["golden", "validate", str(GOLDEN_ROOT / "v0.1.2")])
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert len(lines) == 20 + 3 and lines[20] == "… 2643 more (--limit 0 lists all)"
    assert lines[21] == "v0.1.2: 4561 rows, 2663 component values not found in raw (2663 only in another case, 0 not at all)"
    assert lines[22].startswith("by tag: locality 1067, street 916, venue 490")
    assert "is in raw only in another case" in lines[0]
    everything = CliRunner().invoke(main, ["golden", "validate", str(GOLDEN_ROOT / "v0.1.2"), "--limit", "0"])
    assert len(everything.output.splitlines()) == 2663 + 2
    # --ignore-case: what the runtime profile can match passes (a CI step on v0.1.2 could never pass)
    r = CliRunner().invoke(main, ["golden", "validate", str(GOLDEN_ROOT / "v0.1.2"), "--ignore-case"])
    assert r.exit_code == 0 and r.output.splitlines()[21] == lines[21]
    bad = tmp_path / "g"
    bad.mkdir()
    (bad / "us.jsonl").write_text('{"raw": "12 Main St", "components": {"street": "Elm St"}}\n', encoding="utf-8")
    assert CliRunner().invoke(main, ["golden", "validate", str(bad), "--ignore-case"]).exit_code == 1


def test_the_eval_table_shows_a_dash_where_nothing_was_measured():
    """A tag with no gold value and no prediction in a view, and a view with no entries, printed
    0.0000 as if measured; the diagnose console and the HTML show "—" (and "FP-only" for a tag
    with predictions and no gold value)."""
    from runfactory import make_run

    from mailwoman_eval.console import per_tag_table
    from mailwoman_eval.diagnose import diagnose

    run = make_run([("Paris 75008", {"postcode": "75008"}, {"postcode": "75008", "region": "Paris"})], ["postcode", "locality", "region"])
    views = diagnose(run).metrics
    lines = per_tag_table(views["all"], run.tags).splitlines()
    assert lines[2].split() == ["postcode", "1.0000", "1.0000", "1.0000", "1", "1", "0", "0"]
    assert lines[3].split() == ["locality", "—", "—", "—", "0", "0", "0", "0"]
    # predictions and no gold value: precision 0 is measured, recall is 0/0, F1 measures nothing (was 0.0000 x3)
    assert lines[4].split() == ["region", "0.0000", "—", "FP-only", "0", "0", "1", "0"]
    assert lines[5].startswith("FP-only: no gold value in that view")
    assert "micro F1 0.6667   macro F1 1.0000 (mean over 1 tags" in lines[-2]
    assert lines[-1].startswith("exact match 0.0000")
    empty = per_tag_table(views["adversarial_only"], run.tags)
    assert "micro F1 —   macro F1 — (mean over 0 tags" in empty and "exact match —" in empty and "entries 0" in empty
    assert "FP-only" not in empty


def test_calibration_counts_a_piece_correct_only_when_its_labels_are_equal(tmp_path, shared):
    """A label list with B-country but no I-country: gold I-country pieces have no label id, and
    were mapped to id 0 ("O"), so an "O" decoded there counted as correct in the calibration."""
    import shutil

    from conftest import TINY

    onnx = tmp_path / "m" / "model.onnx"
    onnx.parent.mkdir()
    shutil.copyfile(TINY / "onnx" / "model.onnx", onnx)  # without its sidecar: the labels come from --labels
    labels = json.loads((TINY_STEP / "config.json").read_text())["id2label"]
    labels = [labels[str(k)] for k in range(len(labels))]
    labels[labels.index("I-country")] = "I-nation"
    out = tmp_path / "run"
    r = run_cli("eval", "--ckpt", str(onnx), "--labels", ",".join(labels), "--golden", str(GOLDEN_ROOT / "v0.1.2" / "test"),
                "--tokenizer", str(TOKENIZER_V010), "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    n, right = [0] * 10, [0] * 10
    with open(out / "predictions.jsonl") as f:
        for line in f:
            p = json.loads(line)
            for lab, gold, conf in zip(p["labels"], p["gold_labels"], p["amax_conf"], strict=True):
                b = min(9, int(conf * 10))
                n[b] += 1
                right[b] += lab == gold
    cal = json.loads((out / "run.json").read_text())["metrics"]["calibration"]
    assert any("I-country" in json.loads(x)["gold_labels"] for x in (out / "predictions.jsonl").read_text().splitlines())
    for b, bucket in enumerate(cal):
        assert bucket["n"] == n[b]
        assert bucket["acc"] == (round(right[b] / n[b], 6) if n[b] else None), b


def test_golden_list_names_a_broken_sets_file_line_and_reason_whole(tmp_path):
    """The error was cut to 60 characters inside the table cell, path first: under a long root the
    cell held neither the file:line nor the reason."""
    root = tmp_path / "golden-sets-for-the-regional-team" / "shared-checkouts"
    good, bad = root / "good", root / "badjson"
    good.mkdir(parents=True)
    bad.mkdir()
    (good / "us.jsonl").write_text(json.dumps({"raw": "1 Main St", "components": {"street": "Main St"}}) + "\n")
    (bad / "us.jsonl").write_text(json.dumps({"raw": "1 Main St", "components": {}}) + "\n{not json\n")
    r = CliRunner().invoke(main, ["golden", "list"], env={"MWEVAL_GOLDEN_PATH": str(root)})
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith(("good ", "badjson "))}
    assert "unreadable" in rows["badjson"] and "absent" in rows["good"]
    (err,) = r.stderr.splitlines()
    assert err.startswith("error: badjson: ") and f"{bad / 'us.jsonl'}:2" in err and "JSON" in err


def test_golden_verify_says_how_many_rows_repeat(tmp_path):
    g = tmp_path / "g"
    g.mkdir()
    row = json.dumps({"raw": "1 Main St", "components": {"street": "Main St"}}) + "\n"
    (g / "us.jsonl").write_text(row + row + json.dumps({"raw": "2 Main St", "components": {}}) + "\n" + row)
    r = CliRunner().invoke(main, ["golden", "verify", str(g)])
    assert r.exit_code == 0 and "g: 2 rows repeat an earlier row (same raw and components)" in r.stdout
    (g / "us.jsonl").write_text(row)
    assert "repeat" not in CliRunner().invoke(main, ["golden", "verify", str(g)]).stdout


def test_every_option_of_every_command_says_what_it_does():
    """An option without help text leaves the user to guess (diagnose --seed applied to the console
    only, and said nothing)."""
    import click

    def commands(group, path):
        for name, cmd in group.commands.items():
            yield f"{path} {name}", cmd
            if isinstance(cmd, click.Group):
                yield from commands(cmd, f"{path} {name}")

    bare = [f"{path} {'/'.join(p.opts)}" for path, cmd in commands(main, "mweval") for p in cmd.params
            if isinstance(p, click.Option) and not p.help]
    assert bare == []
