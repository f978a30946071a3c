"""`mweval compare`, `mweval gate` and `mweval export-scores`: thin click commands over compare.py
and gate.py, each side a saved run, a scores JSON or a checkpoint evaluated first.

Registered on the main group by the import at the end of cli.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mailwoman_eval.cli import (
    EVAL_KNOBS,
    NO_FORCE_HINT,
    guarded,
    main,
    options,
    refuse_eval_knobs,
    run_eval,
    warn,
)
from mailwoman_eval.errors import MwevalError


def checkpoint_side(spec, golden, ckpt_roots):
    """What compare/gate take for one side: None for a saved run (a run dir, run.json or scores
    JSON), else the checkpoint (a path, as --ckpt takes it, or a name) to evaluate on --golden."""
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.run import RUN_FILE

    p = Path(spec)
    if p.exists():
        saved = (p / RUN_FILE).is_file() if p.is_dir() else p.name == RUN_FILE or p.suffix.lower() == ".json"
        if saved:
            return None
        if not golden:
            raise MwevalError("not a run directory or a scores JSON; to evaluate it as a checkpoint, pass --golden", where=spec)
    elif not golden:
        raise MwevalError(f"{spec!r} is not a run directory; to evaluate it as a checkpoint, pass --golden")
    return resolve_checkpoint(spec, tuple(ckpt_roots))


def saved_side_header(spec) -> dict | None:
    """A saved side's run.json or scores JSON as a dict, read for a check before any evaluation;
    None when it does not read (loading it later says why)."""
    import json as _json

    from mailwoman_eval.fsutil import refuse_special_file
    from mailwoman_eval.run import RUN_FILE

    p = Path(spec)
    p = p / RUN_FILE if p.is_dir() else p
    refuse_special_file(p)  # a FIFO named base.json is never opened
    try:
        doc = _json.loads(p.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) and isinstance(doc.get("golden"), dict) and isinstance(doc.get("profile"), dict) else None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def refuse_mismatch_before_evaluating(saved: dict, gset, profile: str) -> None:
    """A saved side scored on another golden set or profile than the checkpoint side would be: the
    compare refuses it after the evaluation (minutes on a real model), so it is refused before."""
    if not saved:
        return
    sha, gname = gset.sha256, gset.name
    problems = []
    for spec, head in saved.items():
        if head["golden"].get("sha256") != sha:
            problems.append(f"golden sets differ: {spec} was scored on {head['golden'].get('name')} sha256 "
                            f"{str(head['golden'].get('sha256'))[:12]}, the checkpoint would be evaluated on {gname} sha256 {sha[:12]}")
        if head["profile"].get("name") != profile:
            problems.append(f"profiles differ: {spec} was scored with {head['profile'].get('name')}, the checkpoint would be "
                            f"evaluated with {profile}")
    if problems:
        raise MwevalError("; ".join(problems) + " (use --allow-mismatch to compare anyway)")


def base_and_candidate(base, cand, golden, eval_args, quiet, allow_mismatch=False, check_golden=None):
    """Both sides of compare/gate as runs, each loaded or evaluated. An evaluation option is
    refused when it applies to neither checkpoint (or nothing is evaluated), before any work;
    a PyTorch step against its ONNX export takes --pad-to for the export and --engine for the step.
    A saved side scored on another golden set or with another profile than the evaluated one is
    refused before evaluating, and so is what `check_golden(golden set)` refuses (a bootstrap too
    large for its rows). One with another label set is refused by the comparison, after the
    evaluation: the checkpoint's labels are known only once its backend has loaded."""
    from mailwoman_eval.checkpoints.resolve import refuse_inapplicable_knobs
    from mailwoman_eval.golden import load_golden, resolve_golden
    from mailwoman_eval.run import load_run_or_scores

    profile, _tokenizer, labels, pad_to, engine, ckpt_roots, _no_cache = eval_args
    refs = {spec: checkpoint_side(spec, golden, ckpt_roots) for spec in (cand, base)}
    evaluated = [r for r in refs.values() if r is not None]
    refuse_inapplicable_knobs(evaluated, labels, pad_to, engine)
    gset = None
    # with a mismatch allowed, a saved side pairs only the rows both sides have; two checkpoints
    # evaluated on one golden set pair every row
    if evaluated and (not allow_mismatch or len(evaluated) == len(refs)):
        gset = load_golden(*resolve_golden(golden))  # what the checkpoints are then evaluated on
        if len(evaluated) < len(refs):
            heads = {spec: saved_side_header(spec) for spec, r in refs.items() if r is None}
            refuse_mismatch_before_evaluating({k: v for k, v in heads.items() if v is not None}, gset, profile)
        if check_golden:
            check_golden(gset)

    def side(spec, partner=None):
        if refs[spec] is None:
            return load_run_or_scores(spec, partner)
        run, _ = run_eval(spec, golden, *eval_args, quiet=quiet, force_hint=NO_FORCE_HINT, knobs_checked=True, loaded=gset)
        return run

    cand_run = side(cand)
    base_run = side(base, partner=cand_run)
    if not evaluated:
        refuse_eval_knobs([base_run, cand_run])
        if golden:  # ignored without a word, the runs' own golden set would be compared instead
            from mailwoman_eval.golden import load_golden, resolve_golden

            gpath, gname = resolve_golden(golden)
            sha = load_golden(gpath, gname).sha256
            other = [r for r in (base_run, cand_run) if r.golden_sha256 != sha]
            if other:
                raise MwevalError(
                    f"--golden {golden}, but {other[0].path} was scored on {other[0].meta['golden'].get('name')}; "
                    "a saved run is not re-scored (--golden applies when a checkpoint is evaluated)"
                )
    return base_run, cand_run


def warn_if_same(base_run, cand_run) -> None:
    """Two sides with byte-identical predictions (the same run twice, or two names of one
    checkpoint) give a report of zeros that reads like a measured "no change"."""
    sha = base_run.meta.get("predictions_sha256")
    if sha and sha == cand_run.meta.get("predictions_sha256"):
        warn([f"the baseline and the candidate have identical predictions ({base_run.path} and {cand_run.path}): every delta is 0 by construction"])


eval_options_for_compare = options(
    click.option("--golden", default=None, help="Golden set to evaluate a side given as a checkpoint (path or name) on."),
    *EVAL_KNOBS,
    click.option("--allow-mismatch", is_flag=True, help="Compare runs on different golden sets/profiles (said in every output)."),
    click.option("--adversarial", default="default", type=click.Choice(["default", "non-latin"]), show_default=True,
                 help="What counts as adversarial: adversarial.jsonl + kryptonite/graceful notes, optionally + non-Latin rows."),
    click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed."),
)


@main.command("compare")
@click.argument("base")
@click.argument("cand")
@eval_options_for_compare
@click.option("--resamples", default=2000, show_default=True, type=click.IntRange(1000, 1_000_000), help="Paired bootstrap resamples.")
@click.option("--buckets", "scheme", default="default", type=click.Choice(["default", "upstream"]), show_default=True,
              help="Error-category scheme of the category shifts: default (fixed rules) or upstream (diagnose_regression.py).")
@click.option("--out", default=None, type=click.Path(), help="Output directory (default reports/compare__CAND__vs__BASE__<golden>__<profile>/).")
@click.option("--force", is_flag=True, help="Write into a non-empty directory that holds no compare.json.")
@guarded
def compare_cmd(base, cand, golden, profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache, quiet,
                allow_mismatch, adversarial, seed, resamples, scheme, out, force):
    """Regression report: per-tag deltas of CAND against BASE with paired-bootstrap CIs."""
    import json as _json

    from mailwoman_eval.compare import compare, markdown
    from mailwoman_eval.fsutil import atomic_write_text, check_output_dir, output_dir

    if out:  # refused before checkpoints are evaluated, not after
        check_output_dir(Path(out), "compare.json", force)
    eval_args = (profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache)
    from mailwoman_eval.stats import check_resample_size

    # every view is resampled; "all" has every row
    base_run, cand_run = base_and_candidate(base, cand, golden, eval_args, quiet, allow_mismatch,
                                            check_golden=lambda g: check_resample_size(len(g.entries), resamples))
    c = compare(base_run, cand_run, resamples=resamples, seed=seed, adversarial=adversarial, scheme=scheme,
                allow_mismatch=allow_mismatch)
    safe = lambda s: s.replace("/", "-")  # noqa: E731
    on = f"__{safe(cand_run.meta['golden']['name'])}__{cand_run.profile.name}"  # the same pair on another set is another report
    out_dir = Path(out) if out else Path("reports") / f"compare__{safe(cand_run.label)}__vs__{safe(base_run.label)}{on}"
    from mailwoman_eval.report.compare_page import render_compare

    md = markdown(c)
    with output_dir(out_dir, "compare.json", force) as d:
        atomic_write_text(d / "compare.md", md)
        render_compare(c, base_run, cand_run, d / "compare.html")
        atomic_write_text(d / "compare.json", _json.dumps(c, ensure_ascii=False, indent=2) + "\n")
    if c["mismatch"]:
        click.echo("warning: MISMATCH — " + "; ".join(c["mismatch"]), err=True)
    warn_if_same(base_run, cand_run)  # once written: an error stays the one line on stderr
    click.echo(md, nl=False)
    click.echo(f"\nwritten: {os.path.abspath(out_dir)}/compare.json, compare.md, compare.html")


@main.command("gate")
@click.option("--baseline", required=True, help="Baseline: a run directory, a scores JSON (mweval export-scores), or a checkpoint (path or name) with --golden.")
@click.option("--candidate", required=True, help="Candidate: a run directory, or a checkpoint (path or name) with --golden.")
@click.option("--thresholds", default=None, type=click.Path(), help="Thresholds TOML ([defaults], [tags.NAME]).")
@eval_options_for_compare
@click.option("--strict", is_flag=True, help="Exit 1 on WARN too.")
@click.option("--resamples", default=None, type=click.IntRange(1000, 1_000_000),
              help="Paired bootstrap resamples [default: the thresholds' [defaults] resamples, 2000]; a [tags.X] resamples still wins.")
@click.option("--out", default="gate", show_default=True, type=click.Path(), help="Directory for verdict.json, summary.md, junit.xml.")
@click.option("--force", is_flag=True, help="Write into a non-empty directory that holds no verdict.json.")
@guarded
def gate_cmd(baseline, candidate, thresholds, golden, profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache,
             quiet, allow_mismatch, adversarial, seed, strict, resamples, out, force):
    """CI gate on per-tag F1 deltas: exit 0 pass, 1 regression (or WARN with --strict), 2 bad input."""
    import json as _json

    from mailwoman_eval.fsutil import atomic_write_text, check_output_dir, output_dir
    from mailwoman_eval.gate import (
        console_text,
        gate,
        junit_xml,
        load_thresholds,
        markdown,
        refuse_oversized_bootstrap,
    )
    from mailwoman_eval.run import loudest_first

    th = load_thresholds(thresholds)
    if resamples is not None:
        th.defaults["resamples"] = resamples
    check_output_dir(Path(out), "verdict.json", force)  # refused before checkpoints are evaluated, not after
    eval_args = (profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache)
    base_run, cand_run = base_and_candidate(baseline, candidate, golden, eval_args, quiet, allow_mismatch,
                                            check_golden=lambda g: refuse_oversized_bootstrap(g, th, adversarial))
    v = gate(base_run, cand_run, th, seed=seed, adversarial=adversarial, allow_mismatch=allow_mismatch)
    out_dir = Path(out)
    md = markdown(v)
    with output_dir(out_dir, "verdict.json", force) as d:
        atomic_write_text(d / "summary.md", md)
        atomic_write_text(d / "junit.xml", junit_xml(v, strict))
        atomic_write_text(d / "verdict.json", _json.dumps(v, ensure_ascii=False, indent=2) + "\n")
    if v["mismatch"]:  # as compare says it: on stderr too, where a CI log shows it above the table
        click.echo("warning: MISMATCH — " + "; ".join(v["mismatch"]), err=True)
    warn_if_same(base_run, cand_run)
    warn(f"{who} {side['label']}: {w}" for who, side in (("baseline", v["baseline"]), ("candidate", v["candidate"]))
         for w in loudest_first(side["warnings"]))
    click.echo(console_text(v), nl=False)
    failing = [f"{t} ({view})" for view, rows in v["results"].items() for t, r in rows.items()
               if r["verdict"] == "FAIL" or (strict and r["verdict"] == "WARN")]
    failing += [f"nothing gated ({view})" for view in v["untested_views"]] if strict else []
    click.echo(f"\nverdict {v['verdict']}" + (f": {', '.join(failing)}" if failing else "") + f" — written to {os.path.abspath(out_dir)}/")
    sys.exit(1 if failing else 0)


@main.command("export-scores")
@click.option("--run", "run_dir", required=True, type=click.Path(), help="Run directory.")
@click.option("--out", required=True, type=click.Path(), help="Scores JSON to write (commit it as a CI baseline).")
@click.option("--force", is_flag=True, help="Overwrite a file that is not a scores JSON.")
@guarded
def export_scores_cmd(run_dir, out, force):
    """Write a small JSON with what compare/gate need from a run (no pieces, no model)."""
    import json as _json

    from mailwoman_eval.fsutil import atomic_write_text, refuse_overwriting_inputs
    from mailwoman_eval.run import PRED_FILE, RUN_FILE, SCORES_SCHEMA, load_run

    refuse_overwriting_inputs([out], [Path(run_dir) / RUN_FILE, Path(run_dir) / PRED_FILE])  # --force or not
    if Path(out).is_dir() or out.endswith(("/", os.sep)):
        raise MwevalError("--out is a directory; give the JSON file to write (e.g. ci/baseline-scores.json)", where=out)
    if Path(out).is_file() and not force:  # replacing an earlier export is fine; any other file is refused
        try:
            schema = _json.loads(Path(out).read_text(encoding="utf-8")).get("schema")
        except (OSError, ValueError, AttributeError, RecursionError):
            schema = None
        if schema != SCORES_SCHEMA:
            raise MwevalError("--out exists and is not a scores JSON; pass --force to overwrite it", where=out)
    doc = load_run(run_dir).to_scores()
    text = _json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n"
    atomic_write_text(out, text)
    click.echo(f"{os.path.abspath(out)}: {len(doc['entries'])} entries, {len(text.encode()) / 1024:.0f} KiB")
