#!/usr/bin/env python3
"""Side-by-side speed measurements for mweval (issue: batched inference, vectorized decode).

Every measurement runs in its own child process (so peak RSS is its own, and "end to end"
includes interpreter start); measurements of one workload are interleaved round by round (odd
rounds in reverse order) so a noisy, shared machine slows them alike, and the medians are
compared as ratios.

  python scripts/bench.py                      # all workloads, 3 rounds
  python scripts/bench.py --workloads tiny --rounds 5
  python scripts/bench.py --upstream-loop      # also the slow upstream-style per-entry loop
  python scripts/bench.py --quick              # only the floors and the default eval

Measurements per workload:
  floor      bare onnxruntime / torch loop over the same pieces (batch-1 graphs: batch 1 at the
             given padding, 1 session x N threads, N sessions x 1 thread, and N workers calling one
             single-threaded session (arena off), the workers taking rows from one queue;
             batchable models: length-bucketed batches); ratios are against the fastest floor at the
             same padding (its median), and per round against that round's fastest
  eval       mweval eval through the library (tokenize, infer, Viterbi, spans, metrics, write run);
             "[inference …]" is run.json's inference_s, which includes the per-entry decoding the
             inference workers do between batches; the line below it splits the eval's time into
             run.json's phases (rest = audit, run.json, writing and returning)
  reanalyse  diagnose + HTML + CSV from the saved run (no model)
  diagnose   `mweval diagnose --ckpt … --golden …` as a user runs it (process start to report)
  upstream   (opt-in) per-entry loop in the upstream style: batch 1 padded to 128, torch forward,
             Python-loop Viterbi, per-entry decode
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MWEVAL_SHARED", REPO.parent / "shared")).resolve() / "upstream"
GOLDEN = SHARED / "golden" / "v0.1.2"
TOK = SHARED / "tokenizer" / "tokenizer-v0.1.0.model"

WORKLOADS = {
    "en-us": {"ckpt": SHARED / "weights" / "en-us-10.0.0", "tokenizer": None, "kind": "onnx"},
    "v040size": {"ckpt": SHARED / "checkpoints" / "v040size-random" / "step-002200", "tokenizer": TOK, "kind": "pytorch"},
    "tiny": {"ckpt": SHARED / "checkpoints" / "tiny-v040" / "step-000300", "tokenizer": TOK, "kind": "pytorch"},
}


# ---------------------------------------------------------------------------------------------
# child side: one measurement, prints {"seconds": …, "rows": …}


def _ids(workload: dict):
    import numpy as np

    from mailwoman_eval.checkpoints.resolve import find_tokenizer, resolve_checkpoint
    from mailwoman_eval.golden import load_golden
    from mailwoman_eval.tokenizer import MAX_LENGTH, Tokenizer

    ref = resolve_checkpoint(str(workload["ckpt"]))
    tok = Tokenizer(find_tokenizer(ref, str(workload["tokenizer"]) if workload["tokenizer"] else None)[0])
    gset = load_golden(GOLDEN)
    return [np.asarray(tok.encode(e.raw).ids[:MAX_LENGTH], dtype=np.int64) for e in gset.entries]


def child_floor(workload: dict, variant: str) -> dict:
    import numpy as np

    ids = _ids(workload)
    if workload["kind"] == "onnx":
        import onnxruntime as ort

        # "128:1" = padded to 128, one session x all threads; "own:2" = two sessions x 1 thread;
        # "own:shared" = one worker per core calling one single-threaded session, its arena off (the
        # layout the eval uses at own length: on some hosts it is the fastest bare loop, 0.85-1.02x
        # of two sessions, so the floor has to include it)
        pad, sessions = variant.split(":")
        cores = len(os.sched_getaffinity(0))
        shared = sessions == "shared"
        n_sess = cores if shared else int(sessions)
        model = str(workload["ckpt"] / "model.onnx")

        def session(threads, arena=True):
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.enable_cpu_mem_arena = so.enable_mem_pattern = arena
            so.log_severity_level = 4
            return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])

        sess = [session(1, arena=False)] * n_sess if shared else [session(max(1, cores // n_sess)) for _ in range(n_sess)]
        extra = [(i.name, [d if isinstance(d, int) else 1 for d in i.shape[2:]]) for i in sess[0].get_inputs() if i.name not in ("input_ids", "attention_mask")]

        def run(k, rows):
            for i in rows:
                n = len(ids[i])
                w = 128 if pad == "128" else n
                x = np.zeros((1, w), np.int64)
                m = np.zeros((1, w), np.int64)
                x[0, :n], m[0, :n] = ids[i], 1
                feed = {"input_ids": x, "attention_mask": m}
                for name, tail in extra:
                    feed[name] = np.zeros([1, w, *tail], np.float32)
                sess[k].run(["logits"], feed)

        t = time.perf_counter()
        if n_sess == 1:
            run(0, range(len(ids)))
        else:
            from concurrent.futures import ThreadPoolExecutor

            from mailwoman_eval.checkpoints.backend import shared_queue

            # rows from one shared queue, as the eval takes them: with a fixed split (rows k::N), a
            # worker the host slows left the other idle for 0.05-0.78 s at the end (6 rounds); the
            # medians were the same (4.33 s both), the spread was not
            take = shared_queue(range(len(ids)))
            with ThreadPoolExecutor(n_sess) as pool:
                list(pool.map(lambda k: run(k, iter(take, None)), range(n_sess)))
        return {"seconds": time.perf_counter() - t, "rows": len(ids)}
    # PyTorch checkpoint: torch, length-bucketed batches, inference_mode
    import torch

    from mailwoman_eval.checkpoints.backend import length_batches, pad_batch
    from mailwoman_eval.checkpoints.model import MailwomanCoarseEncoder
    from mailwoman_eval.checkpoints.pytorch_dir import labels_from_config, read_config

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    cfg = read_config(workload["ckpt"] / "config.json")
    model = MailwomanCoarseEncoder(cfg, labels_from_config(cfg, "")[0])
    model.load_state_dict(torch.load(workload["ckpt"] / "pytorch_model.bin", map_location="cpu", weights_only=True))
    model.eval()
    t = time.perf_counter()
    with torch.inference_mode():
        for rows in length_batches([len(x) for x in ids]):
            x, m = pad_batch(ids, rows, 0)
            model(torch.from_numpy(x), torch.from_numpy(m))
    return {"seconds": time.perf_counter() - t, "rows": len(ids)}


def child_eval(workload: dict, variant: str, out: Path) -> dict:
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint
    from mailwoman_eval.evaluate import EvalOptions, evaluate
    from mailwoman_eval.golden import load_golden
    from mailwoman_eval.profiles import RUNTIME

    t = time.perf_counter()
    pad_to, engine = "auto", "onnx"
    if workload["kind"] == "onnx":
        pad_to = variant
    else:
        engine = variant
    opts = EvalOptions(profile=RUNTIME, tokenizer=str(workload["tokenizer"]) if workload["tokenizer"] else None, pad_to=pad_to, engine=engine, use_cache=False)
    # as `mweval eval` calls it: the golden set loads inside evaluate, alongside the model and tokenizer
    run = evaluate(resolve_checkpoint(str(workload["ckpt"])), lambda: load_golden(GOLDEN, "v0.1.2"), opts, out)
    seconds = time.perf_counter() - t
    tm = run.meta["timings"]
    phases = {k: tm[f"{k}_s"] for k in ("load_and_tokenize", "inference", "decode", "score")}
    phases["rest"] = seconds - sum(phases.values())  # audit, run.json, writing, returning
    return {"seconds": seconds, "rows": len(run.predictions), "inference_s": tm["inference_s"], "phases": phases}


def child_reanalyse(out: Path) -> dict:
    from mailwoman_eval.diagnose import diagnose, write_error_table
    from mailwoman_eval.run import load_run

    t = time.perf_counter()
    run = load_run(out)
    d = diagnose(run)
    html = out.parent / "report.html"
    write_error_table(d, html.with_name("report.errors.csv"))
    from mailwoman_eval.report.diagnose_page import render_diagnose

    render_diagnose(d, html, "report.errors.csv")
    return {"seconds": time.perf_counter() - t, "rows": len(run.predictions)}


def child_upstream(workload: dict) -> dict:
    """The upstream shape: per entry, [1,128] forward, crf.py-style Viterbi in a Python loop over
    time steps with torch ops, then decode_components; one entry at a time."""
    import numpy as np
    import torch

    from mailwoman_eval.checkpoints.model import MailwomanCoarseEncoder
    from mailwoman_eval.checkpoints.pytorch_dir import labels_from_config, read_config
    from mailwoman_eval.checkpoints.resolve import find_tokenizer, resolve_checkpoint
    from mailwoman_eval.decode import components_from_labels
    from mailwoman_eval.golden import load_golden
    from mailwoman_eval.profiles import UPSTREAM_EVAL
    from mailwoman_eval.tokenizer import Tokenizer

    cfg = read_config(workload["ckpt"] / "config.json")
    labels = labels_from_config(cfg, "")[0]
    model = MailwomanCoarseEncoder(cfg, labels)
    model.load_state_dict(torch.load(workload["ckpt"] / "pytorch_model.bin", map_location="cpu", weights_only=True))
    model.eval()
    ref = resolve_checkpoint(str(workload["ckpt"]))
    tok = Tokenizer(find_tokenizer(ref, str(workload["tokenizer"]))[0])
    entries = load_golden(GOLDEN).entries
    crf = model.crf
    t = time.perf_counter()
    with torch.no_grad():
        for e in entries:
            enc = tok.encode(e.raw)
            n = min(len(enc), 128)
            x = torch.zeros(1, 128, dtype=torch.long)
            m = torch.zeros(1, 128, dtype=torch.long)
            x[0, :n] = torch.tensor(enc.ids[:n])
            m[0, :n] = 1
            em = model(x, m)[0]
            trans = crf.transitions + crf.transition_mask
            score = crf.start_transitions + crf.start_mask + em[0]
            back = []
            for s in range(1, n):
                cand = score[:, None] + trans + em[s][None, :]
                score, idx = cand.max(0)
                back.append(idx)
            best = int((score + crf.end_transitions).argmax())
            path = [best]
            for idx in reversed(back):
                best = int(idx[best])
                path.append(best)
            path.reverse()
            conf = torch.softmax(em[:n], -1).max(-1).values.numpy()
            components_from_labels(e.raw, [labels[i] for i in path], enc.begin, enc.end, np.asarray(conf), UPSTREAM_EVAL)
    return {"seconds": time.perf_counter() - t, "rows": len(entries)}


def child_main(argv: list[str]) -> None:
    kind, name, variant, out = argv
    w = WORKLOADS[name]
    if kind == "floor":
        res = child_floor(w, variant)
    elif kind == "eval":
        res = child_eval(w, variant, Path(out))
    elif kind == "reanalyse":
        res = child_reanalyse(Path(out))
    elif kind == "upstream":
        res = child_upstream(w)
    else:
        raise SystemExit(f"unknown measurement {kind}")
    print(json.dumps(res))


# ---------------------------------------------------------------------------------------------
# parent side


def spawn(cmd: list[str], env: dict | None = None) -> dict:
    """Run a child; wall seconds from the parent, peak RSS from wait4."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    out, err = p.stdout.read().decode(), p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"measurement failed: {' '.join(cmd)}\n{err[-2000:]}")
    res = json.loads(out.strip().splitlines()[-1]) if out.strip().startswith("{") or "\n{" in out else {}
    res["wall"] = wall
    res["rss_mb"] = ru.ru_maxrss / 1024
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="tiny,v040size,en-us")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--upstream-loop", action="store_true", help="also time the upstream-style per-entry loop (slow)")
    ap.add_argument("--quick", action="store_true", help="only the floors and the default eval (en-us: own length only)")
    args = ap.parse_args()
    if not GOLDEN.is_dir():
        raise SystemExit(f"upstream data not found under {SHARED} (set MWEVAL_SHARED)")
    py = sys.executable
    me = str(Path(__file__).resolve())
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}, load avg {os.getloadavg()[0]:.2f}")
    print(f"golden v0.1.2 (4561 rows), {args.rounds} rounds, medians; every measurement in a fresh process\n")
    tmp = Path(tempfile.mkdtemp(prefix="mweval-bench-"))
    env = {**os.environ, "MWEVAL_CACHE": str(tmp / "cache")}
    for name in [w.strip() for w in args.workloads.split(",") if w.strip()]:
        w = WORKLOADS[name]
        plan: list[tuple[str, str, list[str]]] = []
        if w["kind"] == "onnx":
            for pad in ("own",) if args.quick else ("128", "own"):
                plan.append((f"floor pad-{pad} 1 session x {cores} threads", "floor", [py, me, "--child", "floor", name, f"{pad}:1", "-"]))
                plan.append((f"floor pad-{pad} {cores} sessions x 1 thread", "floor", [py, me, "--child", "floor", name, f"{pad}:{cores}", "-"]))
                plan.append((f"floor pad-{pad} {cores} workers, shared session", "floor", [py, me, "--child", "floor", name, f"{pad}:shared", "-"]))
                plan.append((f"eval pad-{pad}", "eval", [py, me, "--child", "eval", name, pad, str(tmp / name / f"run-{pad}")]))
        else:
            plan.append(("floor torch batched", "floor", [py, me, "--child", "floor", name, "-", "-"]))
            for engine in ("onnx",) if args.quick else ("onnx", "numpy", "torch"):
                plan.append((f"eval engine={engine}", "eval", [py, me, "--child", "eval", name, engine, str(tmp / name / f"run-{engine}")]))
        reanalyse_dir = tmp / name / ("run-own" if w["kind"] == "onnx" else "run-onnx")
        if args.quick:
            plan = [p for p in plan if p[1] != "floor" or "1 session x" not in p[0]]
        plan.append(("reanalyse (diagnose+HTML from run)", "reanalyse", [py, me, "--child", "reanalyse", name, "-", str(reanalyse_dir)]))
        diag = [sys.executable, "-m", "mailwoman_eval", "diagnose", "--ckpt", str(w["ckpt"]), "--golden", str(GOLDEN), "--no-cache", "-q",
                "--out", str(tmp / name / "diag.html")]
        if w["tokenizer"]:
            diag += ["--tokenizer", str(w["tokenizer"])]
        plan.append(("diagnose end to end (CLI)", "diagnose", diag))
        if args.upstream_loop and w["kind"] == "pytorch":
            plan.append(("upstream-style loop", "upstream", [py, me, "--child", "upstream", name, "-", "-"]))
        if args.quick:
            plan = [p for p in plan if p[1] in ("floor", "eval")]
        results: dict[str, list[dict]] = {label: [] for label, _, _ in plan}
        for r in range(args.rounds):
            # odd rounds run the plan backwards (ABBA), so no measurement always follows the same one
            # (the host may slow a process that comes after minutes of load); reanalyse reads the run
            # an eval wrote in round 0
            for label, kind, cmd in plan if r % 2 == 0 else plan[::-1]:
                if kind == "upstream" and r > 0:
                    continue
                results[label].append(spawn(cmd, env))
        print(f"== {name}: {w['ckpt'].relative_to(SHARED)}")
        med = {}
        for label, rs in results.items():
            key = "seconds" if "seconds" in rs[0] else "wall"
            med[label] = statistics.median(x[key] for x in rs)
            wall = statistics.median(x["wall"] for x in rs)
            rss = max(x["rss_mb"] for x in rs)
            inf = f"  [inference {statistics.median(x['inference_s'] for x in rs):.2f} s]" if "inference_s" in rs[0] else ""
            if "phases" in rs[0]:  # where the eval's time goes besides the floor's work (medians per phase)
                inf += "\n" + " " * 45 + ", ".join(f"{k.replace('_', ' ')} {statistics.median(x['phases'][k] for x in rs):.3f} s"
                                                  for k in rs[0]["phases"])
            print(f"  {label:40s} {med[label]:8.2f} s  (process {wall:6.2f} s)  {4561 / med[label]:8.0f} rows/s  peak RSS {rss:6.0f} MB{inf}")
        print("  ratios (median of medians; per round: each eval against the same round's floor):")
        floors = {k: v for k, v in med.items() if k.startswith("floor")}
        for label, v in med.items():
            if label.startswith("eval"):
                same = [f for f in floors if label.split()[-1] in f] or list(floors)
                best_floor = min(same, key=floors.get)
                best = floors[best_floor]
                key = lambda x: x["seconds"]  # noqa: E731
                paired = sorted(key(e) / min(key(results[f][r]) for f in same) for r, e in enumerate(results[label]))
                print(
                    f"    {label:38s} / best matching floor = {v / best:5.2f}x   per round: median {statistics.median(paired):.2f}x,"
                    f" range {paired[0]:.2f}-{paired[-1]:.2f}x ({len(paired)} rounds); best floor: {best_floor.removeprefix('floor ')}"
                )
        if "upstream-style loop" in med:
            print(f"    upstream-style loop / diagnose end to end = {med['upstream-style loop'] / med['diagnose end to end (CLI)']:5.1f}x")
        print()


if __name__ == "__main__":
    main()
