"""The run artifact: `run.json` (provenance, counts, metrics) + `predictions.jsonl` (per entry).

It is the one seam: diagnose, compare, gate and report read run directories, never the model.
Reruns on the same inputs are byte-identical except the `timings` block.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson

from mailwoman_eval import __version__
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import (
    UMASK,
    ascii_int,
    atomic_write_bytes,
    output_dir,
    refuse_special_file,
    sha256_bytes,
)
from mailwoman_eval.gcpause import gc_paused
from mailwoman_eval.golden import REPO_ROOT
from mailwoman_eval.metrics import EntryVectors, outcome_matrix, outcome_row, tag_index
from mailwoman_eval.profiles import PROFILES, Profile, get_profile

SCHEMA = "mweval.run/1"
SCORES_SCHEMA = "mweval.scores/1"
RUN_FILE = "run.json"
PRED_FILE = "predictions.jsonl"
# What readers index without further checks: a file lacking these is refused with a message.
_RUN_KEYS = {"profile": dict, "tags": list, "golden": dict, "checkpoint": dict, "decode": dict, "tokenizer": dict, "metrics": dict}
_PRED_KEYS = {
    "id": str, "file": str, "raw": str, "gold": dict, "pred": dict, "adversarial": bool, "non_latin": bool,
    "labels": list, "conf": list, "amax_conf": list,
}
_SCORES_KEYS = {"mweval_version": str, "checkpoint": dict, "tokenizer": dict, "golden": dict, "profile": dict, "decode": dict,
                "tags": list, "metrics": dict}


OOD_PREFIX = "OUT OF DISTRIBUTION"  # how a backend's warning about zero-fed side channels begins


def loudest_first(warnings: list[str]) -> list[str]:
    """A run's warnings with the out-of-distribution one first (every output shows it loudly)."""
    return sorted(warnings, key=lambda w: not w.startswith(OOD_PREFIX))


def dumps_line(obj: dict) -> bytes:
    """One compact JSON line, UTF-8, 12x faster than json.dumps(obj, ensure_ascii=False,
    separators=(",", ":")) for our records (7 MB: 0.02 s vs 0.24 s). The same JSON values, though
    not always the same bytes: orjson spells some floats shorter (5e-6 and 0.00001 where json
    writes 5e-06 and 1e-05; both read back as the same float). It would write NaN as null, and
    evaluate refuses non-finite logits before any is written."""
    return orjson.dumps(obj)


def dumps_doc(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def git_commit() -> str | None:
    """HEAD of mweval's own checkout, with "-dirty" appended when a tracked file of the package (or
    pyproject.toml) has uncommitted changes (untracked files do not count): a run made by edited
    code does not claim the commit's. The same tree gives the same string; None outside mweval's
    checkout or when git cannot tell."""
    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:  # --no-optional-locks: a status that refreshes the index must not take index.lock from a commit
            return subprocess.run(["git", "--no-optional-locks", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                                  timeout=5, check=False)
        except (OSError, subprocess.SubprocessError):
            return None

    # only mweval's own checkout: a package installed inside another project's checkout is not it
    top = git("rev-parse", "--show-toplevel", "HEAD")
    lines = top.stdout.split() if top is not None and top.returncode == 0 else []
    if len(lines) != 2 or Path(lines[0]).resolve() != REPO_ROOT.resolve():
        return None
    # the code that makes the numbers (the package and its dependency pins), not README or tests
    status = git("status", "--porcelain", "--untracked-files=no", "--", "mailwoman_eval", "pyproject.toml")
    if status is None or status.returncode != 0:
        return None  # not known to be clean: no claim rather than a wrong one
    return lines[1] + ("-dirty" if status.stdout.strip() else "")


def cache_root() -> Path:
    if os.environ.get("MWEVAL_CACHE"):
        return Path(os.environ["MWEVAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "mweval"


CACHE_FORMAT = 3  # bump when the bytes a run is written as change, so stale cached runs are not served


@functools.cache
def code_sha256() -> str:
    """One hash over this package's source files: a cached run is served only to the code that
    wrote it (a fix to decoding in a dirty checkout must not be answered with the old numbers)."""
    root = Path(__file__).resolve().parent
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".j2", ".css", ".js"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def cache_key(parts: dict) -> str:
    """`parts` names every input of the run; the code and library versions (`environment`) that
    turn them into numbers are part of the key as well."""
    doc = {**parts, "mweval_version": __version__, "code": code_sha256(), "cache_format": CACHE_FORMAT}
    return sha256_bytes(json.dumps(doc, sort_keys=True).encode())[:32]


CACHE_WARNING = "warning: the run cache at"


def write_run(out: Path, run_json: dict, predictions: list[dict], force: bool = False, cache_key: str | None = None,
              log: Callable[[str], None] = lambda s: None) -> dict:
    """predictions first, run.json last (its `predictions_sha256` ties the pair together).
    With `cache_key`, the same bytes are stored in the cache under it (`store_in_cache`); a cache
    that cannot be written is said through `log` (it only makes the next run slower).

    Returns the run.json content as written."""
    pred_bytes = b"".join(dumps_line(p) + b"\n" for p in predictions)
    run_json = dict(run_json)
    run_json["predictions_sha256"] = sha256_bytes(pred_bytes)
    run_bytes = dumps_doc(run_json).encode("utf-8")
    with output_dir(out, RUN_FILE, force) as d:
        atomic_write_bytes(d / PRED_FILE, pred_bytes)
        atomic_write_bytes(d / RUN_FILE, run_bytes)
    if cache_key is not None:
        problem = store_in_cache(cache_key, pred_bytes, run_bytes)
        if problem:
            log(f"{CACHE_WARNING} {cache_root()} cannot be written ({problem}); runs are not cached (set MWEVAL_CACHE, or pass --no-cache)")
    return run_json


def store_in_cache(key: str, pred_bytes: bytes, run_bytes: bytes) -> str | None:
    """The bytes this process wrote, not `out` read back: another eval writing the same `--out`
    at the same moment put its own run there, and it was stored under this key (the audit's
    cache poisoning: a later eval of this checkpoint was served the other model's numbers). The
    entry is staged beside its place and renamed in whole, so a reader never sees half of it."""
    runs = cache_root() / "runs"
    dest = runs / key
    stage = None
    try:
        runs.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(runs)
        stage = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=runs))
        os.chmod(stage, 0o777 & ~UMASK)  # mkdtemp makes 0700: a cache shared between users must stay readable
        atomic_write_bytes(stage / PRED_FILE, pred_bytes)  # flushed to disk before the entry is renamed in
        atomic_write_bytes(stage / RUN_FILE, run_bytes)
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)  # stale or damaged (a sound entry is a hit, not stored again)
        os.rename(stage, dest)
        stage = None
    except (OSError, MwevalError) as e:  # atomic_write_bytes says a full disk as MwevalError: exit 2 for a run already written
        if dest.is_dir():
            return None  # another process just renamed in an entry of this key: it holds the same run
        if isinstance(e, MwevalError):
            return e.message.removeprefix("cannot write: ")
        return e.strerror or type(e).__name__  # only a slower next run: said, not an error
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    return None


def _remove_stale_stages(runs: Path, age_s: float = 3600.0) -> None:
    """Staging dirs (`.KEY.*`) a killed process left behind; an hour old, no store is still writing."""
    now = time.time()
    for p in runs.glob(".*.*"):
        try:
            if p.is_dir() and now - p.stat().st_mtime > age_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def cached_run(key: str, expect: dict[str, object]) -> Run | None:
    """The cached run stored under `key`, if it is sound and is the run of this key: it records
    the key itself and the checkpoint/tokenizer/golden sha256s in `expect` (dotted run.json
    paths -> value). Anything else is removed and reported as a miss."""
    d = cache_root() / "runs" / key
    if not ((d / RUN_FILE).is_file() and (d / PRED_FILE).is_file()):
        return None
    try:
        run = load_run(d)
    except MwevalError:
        run = None
    if run is not None:
        want = {"timings.cache_key": key, **expect}
        counts = run.meta.get("counts")  # load_run accepts a run.json whose counts is not an object
        sound = bool(run.meta.get("predictions_sha256")) and isinstance(counts, dict) and len(run.predictions) == counts.get("entries")  # load_run checked the hash
        if sound and all(_dotted(run.meta, k) == v for k, v in want.items()):
            return run
    shutil.rmtree(d, ignore_errors=True)
    return None


def _dotted(doc: dict, path: str):
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


@dataclass
class Run:
    path: Path
    meta: dict
    predictions: list[dict]

    @property
    def profile(self) -> Profile:
        return get_profile(self.meta["profile"]["name"])

    @property
    def tags(self) -> list[str]:
        return list(self.meta["tags"])

    @property
    def ids(self) -> list[str]:
        return [p["id"] for p in self.predictions]

    @property
    def golden_sha256(self) -> str:
        return self.meta["golden"]["sha256"]

    @property
    def label(self) -> str:
        return self.meta["checkpoint"]["name"]

    @cached_property
    def outcomes(self) -> np.ndarray:
        prof, index = self.profile, tag_index(self.tags)
        rows = [
            outcome_row(p["gold"], {t: c["value"] for t, c in p["pred"].items()}, self.tags, prof, index)
            for p in self.predictions
        ]
        return outcome_matrix(rows, len(self.tags))

    @cached_property
    def vectors(self) -> EntryVectors:
        sums = [p["_sums"] if "_sums" in p else (sum(p["amax_conf"]), sum(p["conf"]), len(p["labels"])) for p in self.predictions]
        arr = np.array(sums, dtype=np.float64).reshape(len(sums), 3)
        return EntryVectors(tags=self.tags, out=self.outcomes, conf_sum=arr[:, 0], chosen_sum=arr[:, 1], n_pieces=arr[:, 2].astype(np.int64))

    def to_scores(self) -> dict:
        """A small JSON a CI can commit as its baseline: per-entry predicted values, no pieces."""
        m = self.meta
        entries = []
        for p, (a, c, n) in zip(self.predictions, self.vectors_sums(), strict=True):
            entries.append(
                {
                    "id": p["id"],
                    "adv": int(bool(p["adversarial"])),
                    "nl": int(bool(p["non_latin"])),
                    "pred": {t: v["value"] for t, v in p["pred"].items()},
                    "sums": [round(a, 6), round(c, 6), int(n)],
                    "row": row_digest(p["raw"], p["gold"]),
                }
            )
        return {
            "schema": SCORES_SCHEMA,
            "mweval_version": m["mweval_version"],
            "checkpoint": {k: m["checkpoint"].get(k) for k in ("name", "path", "kind", "format", "sha256", "labels", "zero_fed_inputs")},
            "tokenizer": m["tokenizer"],
            "golden": {k: m["golden"][k] for k in ("name", "sha256", "files", "rows")},
            "profile": m["profile"],
            "decode": m["decode"],
            "tags": m["tags"],
            "metrics": {"views": m["metrics"]["views"]},
            "warnings": list(m.get("warnings") or []),
            "entries": entries,
        }

    def vectors_sums(self) -> list[tuple[float, float, int]]:
        v = self.vectors
        return list(zip(v.conf_sum.tolist(), v.chosen_sum.tolist(), v.n_pieces.tolist(), strict=True))

    def adversarial_mask(self, mode: str = "default") -> np.ndarray:
        """Adversarial = adversarial.jsonl or kryptonite/graceful notes; `non-latin` adds non-Latin rows."""
        adv = np.array([bool(p["adversarial"]) for p in self.predictions], dtype=bool)
        if mode == "non-latin":
            adv |= np.array([bool(p["non_latin"]) for p in self.predictions], dtype=bool)
        elif mode != "default":
            raise MwevalError(f"unknown --adversarial mode {mode!r} (default or non-latin)")
        return adv


def _read_schema_doc(path: Path, schema: str, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, an int over 4300 digits, UnicodeDecodeError
        raise MwevalError(f"unreadable {what} ({e})", where=str(path)) from None
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        raise MwevalError(f"{what} is not an mweval file of schema {schema}", where=str(path))
    return doc


def run_inputs(run: Run) -> list[Path]:
    """The files a run was made from and is read from, which no output may replace: its own pair, the
    golden set's directory and files, the checkpoint's files and the tokenizer."""
    m = run.meta
    out = [run.path / RUN_FILE, run.path / PRED_FILE]
    for key in ("golden", "checkpoint"):
        p = m.get(key, {}).get("path") if isinstance(m.get(key), dict) else None
        if isinstance(p, str) and p:
            d = Path(p)
            out.append(d)
            if d.is_dir():
                out += [f for f in d.iterdir() if f.is_file()]
    tok = m.get("tokenizer", {}).get("path") if isinstance(m.get("tokenizer"), dict) else None
    if isinstance(tok, str) and tok:
        out.append(Path(tok))
    return out


def _checkpoint_hint(path: Path) -> str:
    """What a user who gave a checkpoint where a run goes (`diagnose --run step-002200`) needs to hear."""
    from mailwoman_eval.checkpoints.resolve import resolve_checkpoint

    if path.is_dir() and ((path / "config.json").is_file() or (path / "model.onnx").is_file()):
        return "; it is a checkpoint: evaluate it with --ckpt … --golden …"
    if not path.exists():
        try:
            ref = resolve_checkpoint(str(path))
        except MwevalError:
            return ""
        return f"; {str(path)!r} names the checkpoint {ref.name}: evaluate it with --ckpt {path} --golden …"
    return ""


@gc_paused()
def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not path.is_dir():
        if path.is_file():
            hint = (f"give its directory, {path.parent}" if path.name == RUN_FILE
                    else "a scores JSON (export-scores) holds no entries: give the run directory it came from" if path.suffix == ".json"
                    else "a file")
            raise MwevalError(f"not a run directory: {hint}", where=str(path))
        raise MwevalError("run directory does not exist" + _checkpoint_hint(path), where=str(path))
    run_file, pred_file = path / RUN_FILE, path / PRED_FILE
    if not run_file.is_file():
        raise MwevalError("not an mweval run directory (no run.json)" + _checkpoint_hint(path), where=str(path))
    meta = _read_schema_doc(run_file, SCHEMA, "run.json")
    lacking = [k for k, t in _RUN_KEYS.items() if not isinstance(meta.get(k), t)]
    if lacking or not isinstance(meta["golden"].get("sha256"), str) or not isinstance(meta["profile"].get("name"), str) \
            or meta["profile"]["name"] not in PROFILES:
        raise MwevalError(f"run.json is incomplete (lacks or mistypes {', '.join(lacking) or 'golden/profile'})", where=str(run_file))
    refuse_special_file(pred_file)  # a FIFO or /dev/zero: waited on, or read without end
    try:
        data = pred_file.read_bytes()
    except OSError as e:
        raise MwevalError(f"cannot read predictions: {e.strerror}", where=str(pred_file)) from None
    if meta.get("predictions_sha256") and sha256_bytes(data) != meta["predictions_sha256"]:
        raise MwevalError("predictions.jsonl does not match run.json (interrupted or edited write)", where=str(pred_file))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise MwevalError("not UTF-8", where=f"{pred_file}:{line}") from None
    preds = []
    # split on "\n" only: str.splitlines() also breaks at U+2028, U+0085, ... which json.dumps
    # leaves unescaped inside a raw string, cutting one prediction into two malformed lines.
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise MwevalError(f"malformed prediction ({e})", where=f"{pred_file}:{n}") from None
            if not isinstance(row, dict):
                raise MwevalError("prediction row is not a JSON object", where=f"{pred_file}:{n}")
            # what diagnose, compare, gate and export-scores index without further checks
            bad = [k for k, t in _PRED_KEYS.items() if not isinstance(row.get(k), t)]
            if not bad and not all(isinstance(c, dict) and isinstance(c.get("value"), str) for c in row["pred"].values()):
                bad = ["pred values"]
            if bad:
                raise MwevalError(f"prediction row lacks or mistypes {', '.join(bad)}", where=f"{pred_file}:{n}")
            preds.append(row)
    entries = meta.get("counts", {}).get("entries") if isinstance(meta.get("counts"), dict) else None
    if isinstance(entries, int) and entries != len(preds):  # the hash catches it too, when run.json has one
        raise MwevalError(f"predictions.jsonl holds {len(preds)} row{'' if len(preds) == 1 else 's'} and run.json counts {entries} (truncated or edited?)",
                          where=str(pred_file))
    return Run(path, meta, preds)



def row_digest(raw: str, gold: dict) -> str:
    """Which address and gold an entry holds, in 16 hex chars: scores files carry it, since they
    carry no raw or gold, so rows with the same id (file:line) in another golden version can be told apart."""
    return hashlib.sha256(orjson.dumps([raw, gold], option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def row_identity(p: dict) -> str | None:
    """`row_digest` of a prediction row: its own for a run, the recorded one for a scores baseline."""
    return p["_row"] if "_row" in p else row_digest(p["raw"], p["gold"])


def load_scores(path: str | Path, partner: Run) -> Run:
    """A committed scores JSON as a Run, borrowing raw/gold from `partner` (same golden, same ids)."""
    path = Path(path)
    doc = _read_schema_doc(path, SCORES_SCHEMA, "scores JSON")
    entries = doc.get("entries")
    if not all(isinstance(doc.get(k), t) for k, t in _SCORES_KEYS.items()) or not isinstance(entries, list) \
            or not isinstance(doc["golden"].get("sha256"), str) or not isinstance(doc["profile"].get("name"), str) \
            or doc["profile"]["name"] not in PROFILES:
        raise MwevalError("scores file is incomplete (not written by mweval export-scores?)", where=str(path))
    for k, e in enumerate(entries):
        if not (
            isinstance(e, dict) and isinstance(e.get("id"), str) and isinstance(e.get("pred"), dict)
            and all(isinstance(v, str) for v in e["pred"].values())
            and isinstance(e.get("adv"), int) and isinstance(e.get("nl"), int)
            and isinstance(e.get("sums"), list) and len(e["sums"]) == 3
            and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in e["sums"])
            and isinstance(e.get("row", ""), str)
        ):
            raise MwevalError(f"scores entry {k} is malformed (id, adv, nl, pred, sums)", where=str(path))
    by_id = {p["id"]: p for p in partner.predictions}
    by_row: dict[tuple[str, str], dict] = {}  # a row of the partner by what it holds (another golden version moves rows)
    for p in partner.predictions:
        by_row.setdefault((p["file"], row_digest(p["raw"], p["gold"])), p)
    preds = []
    for e in doc["entries"]:
        file, _, line = e["id"].rpartition(":")
        other = by_id.get(e["id"])
        if e.get("row") and (other is None or row_digest(other["raw"], other["gold"]) != e["row"]):
            # the baseline's row is elsewhere in the candidate's golden set, or not in it: compare
            # pairs rows by digest and leaves it out if no candidate row holds it
            other = by_row.get((file, e["row"])) or {"raw": "", "country": None, "source": None, "notes": "", "gold": {}}
        if other is None:
            raise MwevalError(f"entry {e['id']} of the baseline is not in the candidate run (different golden set?)", where=str(path))
        preds.append(
            {
                "id": e["id"],
                "file": file,
                "line": ascii_int(line, 18) or 0,  # a scores id is the user's text
                **{k: other[k] for k in ("raw", "country", "source", "notes", "gold")},
                "adversarial": bool(e["adv"]),
                "non_latin": bool(e["nl"]),
                "pred": {t: {"value": v} for t, v in e["pred"].items()},
                "_sums": tuple(e["sums"]),
                # the baseline's own row (raw + gold), which raw/gold borrowed above cannot tell;
                # None in scores files written before mweval recorded it
                "_row": e.get("row"),
            }
        )
    meta = {k: doc[k] for k in ("mweval_version", "checkpoint", "tokenizer", "golden", "profile", "decode", "tags", "metrics")}
    meta["warnings"] = [str(w) for w in doc.get("warnings") or []]  # older scores files carry none
    meta["schema"] = SCHEMA
    meta["source"] = "scores"
    return Run(path, meta, preds)


def load_run_or_scores(path: str | Path, partner: Run | None = None) -> Run:
    """A run directory, a run.json path, or (with a partner run) a scores JSON."""
    path = Path(path)
    if path.is_dir():
        return load_run(path)
    if path.name == RUN_FILE:
        return load_run(path.parent)
    if path.is_file():
        if partner is None:
            raise MwevalError("a scores JSON can only be the baseline (compare's BASE, gate's --baseline): it holds no entries "
                              "for the other side to be compared against; the candidate is a run directory or a checkpoint", where=str(path))
        return load_scores(path, partner)
    raise MwevalError("no such run directory or scores file", where=str(path))
