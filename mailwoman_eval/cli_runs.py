"""`mweval sweep` and `mweval parity`: thin click commands over sweep.py and parity.py.

Registered on the main group by the import at the end of cli.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mailwoman_eval.cli import guarded, info, main, warn
from mailwoman_eval.metrics import VIEWS

PROFILES = ["runtime", "upstream-eval"]


@main.command("sweep")
@click.argument("run_dir")
@click.option("--golden", required=True, help="Golden set: a name (v0.1.2/test, demo-v1) or a directory.")
@click.option("--window", default=5, show_default=True, type=click.IntRange(1),
              help="Drift = max − min of macro F1 over the last N evaluated steps (all when fewer).")
@click.option("--lr-floor", "lr_floor", default=0.6, show_default=True, type=click.FloatRange(0, 1),
              help="Cosine-tail guard: fires when a window step ran at LR < this × peak LR (0 disables). Peak LR: training_state.json's "
                   "learning_rate when its schedule reproduces train_log.csv, else the log's max lr (at least learning_rate "
                   "when the log starts after the warmup).")
@click.option("--jobs", default=None, type=click.IntRange(1), help="Checkpoints evaluated in parallel [default: min(2, steps)].")
@click.option("--verdict", is_flag=True, help="Exit 1 when --min-peak/--max-drift fails (a drift needs ≥ 2 steps), or the guard fires or cannot check the LR.")
@click.option("--min-peak", "min_peak", default=None, type=click.FloatRange(0, 1), help="Rule: peak macro F1 ≥ X (fraction, e.g. 0.42).")
@click.option("--max-drift", "max_drift", default=None, type=click.FloatRange(0, 1), help="Rule: drift of macro F1 ≤ Y (fraction, e.g. 0.005).")
@click.option("--view", default="excluding_adversarial", show_default=True, type=click.Choice(list(VIEWS)),
              help="Which view's macro F1 and per-tag F1 the sweep follows.")
@click.option("--profile", default="runtime", show_default=True, type=click.Choice(PROFILES),
              help="Decoding/scoring profile: runtime (the shipped decoder) or upstream-eval (eval.py exactly).")
@click.option("--tokenizer", default=None, help="SentencePiece model (default: found per checkpoint).")
@click.option("--engine", default="onnx", show_default=True, type=click.Choice(["onnx", "numpy", "torch"]),
              help="Engine for the checkpoints: onnx (graph built from the weights; fastest) and numpy need no torch.")
@click.option("--out", default=None, type=click.Path(), help="Output directory (default reports/sweep__<run>__<golden>/).")
@click.option("--force", is_flag=True, help="Write into a non-empty directory that holds no sweep.json.")
@click.option("--no-cache", is_flag=True, help="Do not reuse or store cached runs.")
@click.option("--quiet", "-q", is_flag=True, help="No progress notes on stderr.")
@guarded
def sweep_cmd(run_dir, golden, window, lr_floor, jobs, verdict, min_peak, max_drift, view, profile, tokenizer, engine,
              out, force, no_cache, quiet):
    """Evaluate every step-* checkpoint of a training run: F1 and LR per step, peak, drift, cosine-tail guard."""
    from mailwoman_eval.sweep import SweepOptions, console_summary, sweep

    opts = SweepOptions(profile=profile, view=view, tokenizer=tokenizer, engine=engine, window=window, lr_floor=lr_floor,
                        jobs=jobs, min_peak=min_peak, max_drift=max_drift, verdict=verdict, use_cache=not no_cache, force=force)
    from mailwoman_eval.run import CACHE_WARNING

    # -q keeps the cache's warning, as eval does: it is in no sweep.json
    doc, out_dir = sweep(run_dir, golden, opts, Path(out) if out else None, log=lambda s: info(s, quiet and not s.startswith(CACHE_WARNING)))
    warn(doc["warnings"])
    click.echo(console_summary(doc))
    click.echo(f"written: {os.path.abspath(out_dir)}/sweep.html, sweep.csv, sweep.json, runs/")
    sys.exit(doc["verdict"]["exit_code"])


@main.command("parity")
@click.option("--ckpt", required=True, help="PyTorch checkpoint (step) directory: the reference.")
@click.option("--onnx", "onnx_files", required=True, multiple=True, help="ONNX artifact to check (repeatable).")
@click.option("--golden", required=True, help="Golden set: a name (v0.1.2/test, demo-v1) or a directory.")
@click.option("--tokenizer", default=None, help="SentencePiece model (default: found beside the checkpoint).")
@click.option("--profile", default="runtime", show_default=True, type=click.Choice(PROFILES),
              help="Decoding/scoring profile every model is decoded with.")
@click.option("--engine", default="numpy", show_default=True, type=click.Choice(["numpy", "torch", "onnx"]),
              help="Engine running the reference checkpoint (numpy: independent of onnxruntime, so the comparison is not ORT against ORT).")
@click.option("--pad-to", "pad_to", default="auto", show_default=True, type=click.Choice(["auto", "128", "own"]),
              help="ONNX feeding: auto = 128 for int8 graphs (what ships), within-batch otherwise.")
@click.option("--max-delta-pp", "max_delta_pp", default=1.5, show_default=True, type=click.FloatRange(0),
              help="int8: largest allowed |ΔF1| (pp) on a gated tag (upstream's int8 bar).")
@click.option("--min-agreement", "min_agreement", default=99.9, show_default=True, type=click.FloatRange(0, 100),
              help="fp32: smallest allowed % of pieces decoded to the reference's label.")
@click.option("--min-agreement-int8", "min_agreement_int8", default=99.5, show_default=True, type=click.FloatRange(0, 100),
              help="int8: the same floor (the F1 bar alone passes a neighbouring step's export).")
@click.option("--min-support", "min_support", default=30, show_default=True, type=click.IntRange(1),
              help="Gated tags: support ≥ this in the reference.")
@click.option("--ckpt-root", "ckpt_roots", multiple=True, help="Root to look up checkpoint names in, before MWEVAL_CKPT_PATH (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print parity.json to stdout instead of the table.")
@click.option("--out", default=None, type=click.Path(), help="Output directory (default reports/parity__<ckpt>__<golden>/).")
@click.option("--force", is_flag=True, help="Write into a non-empty directory that holds no parity.json.")
@click.option("--quiet", "-q", is_flag=True, help="No progress notes on stderr.")
@guarded
def parity_cmd(ckpt, onnx_files, golden, tokenizer, profile, engine, pad_to, max_delta_pp, min_agreement, min_agreement_int8,
               min_support, ckpt_roots, as_json, out, force, quiet):
    """Do ONNX exports (fp32 / int8) decode like the PyTorch checkpoint? Exit 1 when an artifact fails its rule."""
    import json

    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.golden import load_golden, resolve_golden
    from mailwoman_eval.parity import ParityOptions, console_table, parity_to_dir
    from mailwoman_eval.profiles import get_profile

    ref = resolve_checkpoint(ckpt, tuple(ckpt_roots))
    gpath, gname = resolve_golden(golden)
    gset = load_golden(gpath, gname)
    opts = ParityOptions(profile=get_profile(profile), tokenizer=tokenizer, engine=engine, pad_to=pad_to,
                         max_delta_pp=max_delta_pp, min_agreement=min_agreement, min_agreement_int8=min_agreement_int8,
                         min_support=min_support)
    out_dir = Path(out) if out else Path("reports") / f"parity__{ref.name.replace('/', '-')}__{gname.replace('/', '-')}"
    doc = parity_to_dir(ref, [Path(p) for p in onnx_files], gset, opts, out_dir, force, log=lambda s: info(s, quiet or as_json))
    warn(doc.get("warnings") or [])
    warn(f"{a['name']}: {w}" for a in doc["artifacts"] for w in a["warnings"])
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        click.echo(console_table(doc))
        click.echo(f"written: {os.path.abspath(out_dir)}/parity.json, parity.md")
    sys.exit(doc["exit_code"])
