"""Hand-built runs for rule tests: just the fields downstream stages read."""

from __future__ import annotations

from pathlib import Path

from mailwoman_eval.golden import has_non_latin_letters
from mailwoman_eval.run import SCHEMA, Run


def make_run(rows, tags, profile="upstream-eval", name="hand", golden_sha="g" * 64, path="/nonexistent"):
    """rows: (raw, gold dict, pred dict[, file]) tuples."""
    preds = []
    for i, row in enumerate(rows):
        raw, gold, pred = row[:3]
        file = row[3] if len(row) > 3 else "us.jsonl"
        comps = {}
        for t, v in pred.items():
            s = raw.find(v) if v else -1
            comps[t] = {"value": v, "start": max(s, 0), "end": max(s, 0) + len(v), "confidence": 0.9}
        preds.append(
            {
                "id": f"{file}:{i + 1}",
                "file": file,
                "line": i + 1,
                "raw": raw,
                "country": "US",
                "source": None,
                "notes": "",
                "adversarial": file == "adversarial.jsonl",
                "non_latin": has_non_latin_letters(raw),
                "truncated": False,
                "n_pieces": 1,
                "gold": gold,
                "pred": comps,
                "pieces": ["▁x"],
                "spans": [[0, 1]],
                "labels": ["O"],
                "gold_labels": ["O"],
                "conf": [0.9],
                "amax_conf": [0.9],
            }
        )
    meta = {
        "schema": SCHEMA,
        "profile": {"name": profile},
        "tags": list(tags),
        "golden": {"name": "hand", "sha256": golden_sha},
        "checkpoint": {"name": name},
        "decode": {"transitions": "learned"},
    }
    return Run(Path(path), meta, preds)


def save_run(run: Run, directory) -> Path:
    """Write a hand-built run as a real run directory (run.json + predictions.jsonl)."""
    from mailwoman_eval.run import write_run

    meta = dict(run.meta)
    meta.setdefault("mweval_version", "test")
    meta.setdefault("tokenizer", {})
    meta.setdefault("metrics", {"views": {}})
    meta["golden"] = {"files": {}, "rows": len(run.predictions), **meta["golden"]}
    write_run(Path(directory), meta, run.predictions)
    return Path(directory)


def two_runs(n, lost, tag="postcode", n_adv=0, base_name="base", cand_name="cand"):
    """n entries with a postcode; base gets all right, cand misses the first `lost` (the first
    `n_adv` rows are adversarial.jsonl's)."""
    rows_b, rows_c = [], []
    for i in range(n):
        pc = f"{10000 + i}"
        f = "adversarial.jsonl" if i < n_adv else "us.jsonl"
        rows_b.append((f"Town {pc}", {tag: pc}, {tag: pc}, f))
        rows_c.append((f"Town {pc}", {tag: pc}, {} if i < lost else {tag: pc}, f))
    return make_run(rows_b, [tag], "runtime", base_name), make_run(rows_c, [tag], "runtime", cand_name)
