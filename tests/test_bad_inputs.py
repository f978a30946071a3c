"""Bad-input matrix: every case drives the real CLI; docs/robustness.md lists the same cases.

A case is one of:
- error  — exit 2, exactly one stderr line `mweval: error: <where>: <what>` naming the file (and
           line), no traceback, and nothing under the test's directory created or changed;
- accept — exit 0 and the documented handling (checked in run.json / predictions.jsonl);
- warn   — accept, plus a `warning:` line on stderr;
- skip   — accept; the offending lines are skipped.

Cases run in-process through click's CliRunner (`catch_exceptions=False`, so a traceback fails the
test) except the few marked `subprocess`, whose failure path goes through a native library
(sentencepiece, onnxruntime) that could print on file descriptor 2 behind Python's back.
Everything is written under the test's tmp_path, which is also the working directory.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from clicases import assert_one_line_error, invoke, snapshot, undocumented
from click.testing import CliRunner
from conftest import (
    EN_US,
    GOLDEN_V012,
    REPO,
    TINY,
    TINY_STEP,
    TOKENIZER_V010,
    need_shared,
    rezip,
    short_position_checkpoint,
)
from runfactory import make_run, save_run

from mailwoman_eval.cli import main

GOOD = {
    "raw": "12 Main St, Springfield, IL 62701",
    "components": {"house_number": "12", "street": "Main St", "locality": "Springfield", "region": "IL", "postcode": "62701"},
    "country": "US",
}
GOOD2 = {
    "raw": "5 Rue de la Paix, 75002 Paris",
    "components": {"house_number": "5", "street": "Rue de la Paix", "postcode": "75002", "locality": "Paris"},
    "country": "FR",
}


def line(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def good_lines() -> list[str]:
    return [line(GOOD), line(GOOD2)]


@dataclass
class Ctx:
    """What a case's setup gets: its directory (also the cwd) and pytest's monkeypatch."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    out: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.tmp / "out"

    def golden(self, lines: list[str] | bytes, name: str = "g", file: str = "g.jsonl") -> Path:
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        data = lines if isinstance(lines, bytes) else "".join(s + "\n" for s in lines).encode("utf-8")
        (d / file).write_bytes(data)
        return d

    def eval(self, golden: Path | str | None = None, *extra: str, ckpt=TINY_STEP, tokenizer=TOKENIZER_V010) -> list[str]:
        g = golden if golden is not None else self.golden(good_lines())
        args = ["eval", "--ckpt", str(ckpt), "--golden", str(g), "--out", str(self.out), "-q", "--no-cache"]
        if tokenizer is not None:
            args += ["--tokenizer", str(tokenizer)]
        return args + list(extra)

    def ckpt_copy(self, name: str = "ck", config: dict | str | None = None, bin_bytes: bytes | None = None,
                  bin_obj=None, with_bin: bool = True) -> Path:
        """A step dir beside the test: config.json (edited or verbatim) + the tiny weights (linked)."""
        d = self.tmp / name
        d.mkdir(parents=True)
        cfg = json.loads((TINY_STEP / "config.json").read_text()) if config is None else config
        (d / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
        if bin_obj is not None:
            import torch

            torch.save(bin_obj, d / "pytorch_model.bin")
        elif bin_bytes is not None:
            (d / "pytorch_model.bin").write_bytes(bin_bytes)
        elif with_bin:
            (d / "pytorch_model.bin").symlink_to(TINY_STEP / "pytorch_model.bin")
        return d

    def config(self, **changes) -> dict:
        cfg = json.loads((TINY_STEP / "config.json").read_text())
        cfg.update(changes)
        return cfg

    def onnx_dir(self, name: str = "onx", card: dict | None = None, model: Path | None = None) -> Path:
        """A directory holding the tiny ONNX export (linked) without the crf sidecar, plus a card."""
        d = self.tmp / name
        d.mkdir()
        (d / "model.onnx").symlink_to(model or TINY / "onnx" / "model.onnx")
        if card is not None:
            (d / "model-card.json").write_text(json.dumps(card))
        return d

    def runs(self, base_kw: dict | None = None, cand_kw: dict | None = None) -> tuple[Path, Path]:
        rows = [(GOOD["raw"], {"postcode": "62701", "region": "IL"}, {"postcode": "62701", "region": "IL"})] * 3
        base = make_run(rows, ["postcode", "region"], name="base", **(base_kw or {}))
        cand = make_run(rows, ["postcode", "region"], name="cand", **(cand_kw or {}))
        return save_run(base, self.tmp / "base"), save_run(cand, self.tmp / "cand")


@dataclass
class Case:
    id: str
    kind: str  # "error" | "accept" | "warn" | "skip"
    setup: Callable[[Ctx], list[str]]
    expect: tuple[str, ...] = ()  # fragments of the one error line, or of the warning line(s)
    check: Callable[[Ctx, object], None] | None = None
    subprocess: bool = False
    exit_code: int = 0  # for accept/warn/skip: gate may exit 1 by design


# ---------------------------------------------------------------------------------------------
# checks for accepted inputs


def run_json(c: Ctx) -> dict:
    return json.loads((c.out / "run.json").read_text(encoding="utf-8"))


def predictions(c: Ctx) -> list[dict]:
    text = (c.out / "predictions.jsonl").read_text(encoding="utf-8")
    return [json.loads(s) for s in text.split("\n") if s]


def spans_index_raw(c: Ctx) -> None:
    for p in predictions(c):
        for comp in p["pred"].values():
            assert p["raw"][comp["start"] : comp["end"]] == comp["value"]


def check_rows(n: int, ids: tuple[str, ...] = ()):
    def check(c: Ctx, r) -> None:
        preds = predictions(c)
        assert len(preds) == n == run_json(c)["counts"]["entries"]
        if ids:
            assert tuple(p["id"] for p in preds) == ids
        spans_index_raw(c)

    return check


def check_audit(key: str, value):
    def check(c: Ctx, r) -> None:
        assert run_json(c)["audit"][key] == value

    return check


def check_manifest_mismatch(c: Ctx, r) -> None:
    assert run_json(c)["audit"]["manifest"]["status"] == "mismatch"


def check_truncation(c: Ctx, r) -> None:
    """Pieces past 128 are never seen; their gold values still count (FN), as upstream scores."""
    meta = run_json(c)
    (long,) = [p for p in predictions(c) if p["id"] == "g.jsonl:2"]
    assert long["truncated"] and long["n_pieces"] > 128
    assert len(long["pieces"]) == len(long["labels"]) == len(long["gold_labels"]) == 128
    assert long["spans"][-1][1] < long["raw"].index(" IL 62701")  # the window ends before the tail
    assert "postcode" not in long["pred"] or long["pred"]["postcode"]["value"] != "62701"
    postcode = meta["metrics"]["views"]["all"]["per_tag"]["postcode"]
    assert postcode["support"] == 2 and postcode["fn"] >= 1  # row 1's postcode can be a TP; row 2's cannot
    assert meta["counts"]["truncated"] == 1
    assert any("truncated" in w for w in meta["warnings"])


def check_control_chars(c: Ctx, r) -> None:
    (p,) = predictions(c)
    assert p["raw"] == CONTROL_RAW
    spans_index_raw(c)
    # and the run reads back: U+2028 / U+0085 stay unescaped in JSON, so lines split on "\n" only
    d = invoke(["diagnose", "--run", str(c.out), "--json", "--no-html"])
    assert d.exit_code == 0, d.stderr
    assert json.loads(d.stdout)


def check_forced(c: Ctx, r) -> None:
    assert (c.out / "notes.txt").read_text() == "mine"  # --force writes beside, never wipes
    assert (c.out / "run.json").is_file()


def check_replaced(c: Ctx, r) -> None:
    assert run_json(c)["counts"]["entries"] == 2


def check_verify_warns(c: Ctx, r) -> None:
    assert "manifest mismatch" in r.stdout


# ---------------------------------------------------------------------------------------------
# setups that need more than one line


CONTROL_RAW = "12 Main\x00 St\x07, Spring\x1bfield\x0b, IL\x85 62701\u2028\u200d\u202e \U0001f600"


def long_rows(c: Ctx) -> list[str]:
    """Row 2 is 10,000 chars, its region and postcode far past piece 128."""
    head = "12 Main St, Springfield, "
    tail = " IL 62701"
    filler = ("Building Extension Avenue Springfield North " * 300)[: 10_000 - len(head) - len(tail)]
    raw = head + filler + tail
    assert len(raw) == 10_000
    long = {"raw": raw, "components": {"street": "Main St", "region": "IL", "postcode": "62701"}}
    return [line(GOOD), line(long)]


def over_128_rows(c: Ctx) -> list[str]:
    """Just over 128 pieces: the postcode at the end is the only thing past the window."""
    from mailwoman_eval.tokenizer import Tokenizer

    tok = Tokenizer(TOKENIZER_V010)
    words = "12 Main St, Springfield,"
    while len(tok.encode(words)) <= 128:  # the window ends inside `words`; the tail is past it
        words += " Springfield"
    raw = words + " IL 62701"
    row = {"raw": raw, "components": {"street": "Main St", "region": "IL", "postcode": "62701"}}
    return [line(GOOD), line(row)]


DEEP = "[" * 3000 + "]" * 3000  # JSON/TOML nesting deeper than Python's parsers recurse


def manifest(c: Ctx, sha: str | None = None, entries: int | None = None, lines: list[str] | None = None, entry: dict | None = None) -> Path:
    g = c.golden(lines or good_lines())
    data = (g / "g.jsonl").read_bytes()
    real_sha = hashlib.sha256(data).hexdigest()
    files = {"g.jsonl": {"sha256": sha or real_sha, "entries": 2 if entries is None else entries} if entry is None else entry}
    (g / "MANIFEST.json").write_text(json.dumps({"files": files}))
    return g


def manifest_with_bom(c: Ctx) -> Path:
    """A MANIFEST.json saved with a BOM (as some editors do): the .jsonl files accept one, and the
    manifest was "unreadable" (exit 2)."""
    g = manifest(c)
    (g / "MANIFEST.json").write_bytes(BOM + (g / "MANIFEST.json").read_bytes())
    return g


def export_over_another_file(c: Ctx) -> list[str]:
    """export-scores replaced whatever file --out named; an earlier export is still replaced."""
    args = gate_args(c)
    base = args[args.index("--baseline") + 1]
    (c.tmp / "precious.txt").write_text("not mine to lose\n")
    again = ["export-scores", "--run", base, "--out", str(c.tmp / "s.json")]
    assert CliRunner().invoke(main, again).exit_code == 0 and CliRunner().invoke(main, again).exit_code == 0
    return ["export-scores", "--run", base, "--out", str(c.tmp / "precious.txt")]


def check_manifest_ok_and_rows_counted(n: int):
    def check(c: Ctx, r) -> None:
        meta = run_json(c)
        assert meta["audit"]["manifest"]["status"] == "ok" and meta["golden"]["rows"] == n
        assert [f["entries"] for f in meta["golden"]["files"].values()] == [n]

    return check


def split_as_dot(c: Ctx) -> list[str]:
    c.monkeypatch.chdir(GOLDEN_V012 / "dev")
    return ["golden", "verify", "--strict", "."]


def ambiguous_root(c: Ctx) -> Path:
    """Two runs holding the same step name under one MWEVAL_CKPT_PATH root."""
    root = c.tmp / "ckpts"
    for run in ("runA", "runB"):
        d = root / run / "step-000300"
        d.mkdir(parents=True)
        for f in ("config.json", "pytorch_model.bin"):
            (d / f).symlink_to(TINY_STEP / f)
    c.monkeypatch.setenv("MWEVAL_CKPT_PATH", str(root))
    return root


def truncated_bin(c: Ctx) -> bytes:
    data = (TINY_STEP / "pytorch_model.bin").read_bytes()
    return data[: len(data) // 2]


def edited_bin(member: str, edit) -> bytes:
    """The tiny checkpoint's archive, well formed (valid CRCs), with `edit` applied to the member
    whose name ends in `member`."""
    import io
    import zipfile

    src = zipfile.ZipFile(TINY_STEP / "pytorch_model.bin")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, edit(data) if info.filename.endswith(member) else data)
    return buf.getvalue()


def short_storage_bin(c: Ctx) -> bytes:
    """The first tensor's storage holds fewer elements than its size says (a corrupt or hand-edited
    file): reading it must not run past the storage."""
    return edited_bin("/data/0", lambda data: data[:8])


def bomb_pickle_bin(c: Ctx) -> bytes:
    """data.pkl opens with a BINBYTES8 of length 2**40 over 2 bytes: the C unpickler allocates a
    counted length before reading it (MemoryError, or the OOM killer)."""
    return edited_bin("/data.pkl", lambda data: b"\x80\x04\x8e" + (2**40).to_bytes(8, "little") + b"xx.")


def expanded_state(c: Ctx) -> dict:
    """A 323 KB file whose embedding is a stride-0 view of one float, 2e9 x 64 elements."""
    import torch

    state = torch.load(TINY_STEP / "pytorch_model.bin", weights_only=True)
    state["token_embeddings.weight"] = torch.zeros(1, 1).expand(2_000_000_000, 64)
    return state


def nan_state(c: Ctx) -> dict:
    import torch

    state = torch.load(TINY_STEP / "pytorch_model.bin", weights_only=True)
    state["final_ln.weight"] = torch.full_like(state["final_ln.weight"], float("nan"))
    return state


def onnx_truncated(c: Ctx) -> Path:
    p = c.tmp / "model.onnx"
    data = (TINY / "onnx" / "model.onnx").read_bytes()
    p.write_bytes(data[: len(data) // 3])
    return p


def onnx_without_logits(c: Ctx) -> Path:
    import onnx

    m = onnx.load(str(TINY / "onnx" / "model.onnx"))
    for node in m.graph.node:
        for k, name in enumerate(node.output):
            if name == "logits":
                node.output[k] = "scores"
    for out in m.graph.output:
        if out.name == "logits":
            out.name = "scores"
    p = c.tmp / "renamed.onnx"
    onnx.save(m, str(p))
    return p


def onnx_nan_logits(c: Ctx) -> Path:
    """A graph that loads and runs but outputs NaN: its classifier bias is NaN."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(TINY / "onnx" / "model.onnx"))
    for init in m.graph.initializer:
        if init.name == "inner.classifier.bias":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32("nan"), init.name))
    p = c.tmp / "nan.onnx"
    onnx.save(m, str(p))
    return p


def not_writable_out(c: Ctx) -> Path:
    """A directory nobody may create: under a read-only dir, or (root ignores modes) under a file."""
    if os.geteuid() == 0:
        (c.tmp / "blocker").write_text("a file, not a directory")
        return c.tmp / "blocker" / "run"
    ro = c.tmp / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return ro / "run"


def previous_run(c: Ctx) -> None:
    """An earlier eval into c.out (one row), so a failed rewrite can be checked against it."""
    r = invoke(c.eval(c.golden([line(GOOD)], name="g1")))
    assert r.exit_code == 0, r.stderr


def fail_replace_of(name: str, exc: BaseException):
    def install(c: Ctx) -> None:
        real = os.replace

        def replace(src, dst, *a, **k):
            if Path(dst).name == name:
                assert Path(src).is_file()  # the temp file was written completely before the rename
                raise exc
            return real(src, dst, *a, **k)

        c.monkeypatch.setattr(os, "replace", replace)

    return install


ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def thresholds(c: Ctx, text: str | bytes) -> list[str]:
    base, cand = c.runs()
    p = c.tmp / "th.toml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["gate", "--baseline", str(base), "--candidate", str(cand), "--thresholds", str(p), "--out", str(c.out)]


def gate_args(c: Ctx, base_kw=None, cand_kw=None) -> list[str]:
    base, cand = c.runs(base_kw, cand_kw)
    return ["gate", "--baseline", str(base), "--candidate", str(cand), "--out", str(c.out)]


def compare_args(c: Ctx, base_kw=None, cand_kw=None) -> list[str]:
    base, cand = c.runs(base_kw, cand_kw)
    return ["compare", str(base), str(cand), "--out", str(c.out), "--resamples", "1000"]


def edited_run(c: Ctx, edit: Callable[[Path], None]) -> list[str]:
    base, _ = c.runs()
    edit(base)
    return ["diagnose", "--run", str(base), "--no-html"]


def unhashed_predictions(d: Path, data: bytes) -> None:
    """predictions.jsonl replaced by `data`, and run.json without the hash that would catch it first
    (a run written by hand or by an older tool)."""
    meta = json.loads((d / "run.json").read_text())
    meta.pop("predictions_sha256", None)
    (d / "run.json").write_text(json.dumps(meta))
    (d / "predictions.jsonl").write_bytes(data)


def second_row(d: Path, edit: Callable[[dict], None]) -> bytes:
    rows = [json.loads(line) for line in (d / "predictions.jsonl").read_text().splitlines()]
    edit(rows[1])
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def scores_with(c: Ctx, edit: Callable[[dict], None]) -> list[str]:
    args = gate_args(c)
    base = Path(args[args.index("--baseline") + 1])
    r = CliRunner().invoke(main, ["export-scores", "--run", str(base), "--out", str(c.tmp / "scores.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((c.tmp / "scores.json").read_text())
    edit(doc)
    (c.tmp / "scores.json").write_text(json.dumps(doc))
    return replace_arg(args, "--baseline", c.tmp / "scores.json")


def diagnose_into_a_foreign_runs_dir(c: Ctx) -> list[str]:
    """diagnose --ckpt evaluates into runs/<ckpt>__<golden>__<profile>; that directory holds
    someone's files and no run (diagnose has no --force)."""
    args = c.eval()
    args = ["diagnose", *[a for a in args[1:] if a not in ("--no-cache",)]]
    k = args.index("--out")
    del args[k : k + 2]
    r = CliRunner().invoke(main, [*args, "--no-html"])
    assert r.exit_code == 0, r.output
    (run_dir,) = (c.tmp / "runs").iterdir()
    for f in run_dir.iterdir():
        f.unlink()
    (run_dir / "notes.txt").write_text("mine")
    return [*args, "--no-html", "--no-cache"]


def replace_arg(args: list[str], option: str, value) -> list[str]:
    args = list(args)
    args[args.index(option) + 1] = str(value)
    return args


def check_ckpt_name(name: str):
    def check(c: Ctx, r) -> None:
        assert run_json(c)["checkpoint"]["name"] == name

    return check


def both(*checks):
    def check(c: Ctx, r) -> None:
        for f in checks:
            f(c, r)

    return check


# ---------------------------------------------------------------------------------------------
# the matrix

E, A, W, S = "error", "accept", "warn", "skip"
BOM = b"\xef\xbb\xbf"

def sweep_run(c: Ctx, log: str | None = None, state: bytes | None = None, step_tokenizer: Path | None = None,
              root: Path | None = None, name: str = "run", step_config: dict | None = None) -> list[str]:
    """A two-step training run (tiny weights, linked) and the sweep command over it."""
    run = (root or c.tmp) / name
    for s in (100, 200):
        d = run / f"step-{s:06d}"
        d.mkdir(parents=True)
        for f in ("config.json", "pytorch_model.bin", "training_state.json"):
            (d / f).symlink_to(TINY_STEP / f)
    if log is not None:
        (run / "train_log.csv").write_text(log)
    if state is not None:
        (run / "step-000200" / "training_state.json").unlink()
        (run / "step-000200" / "training_state.json").write_bytes(state)
    if step_config is not None:
        (run / "step-000200" / "config.json").unlink()
        (run / "step-000200" / "config.json").write_text(json.dumps({**json.loads((TINY_STEP / "config.json").read_text()), **step_config}))
    args = ["sweep", str(run), "--golden", str(c.golden(good_lines())), "--out", str(c.out), "--jobs", "1", "-q", "--no-cache"]
    if step_tokenizer is None:
        return args + ["--tokenizer", str(TOKENIZER_V010)]
    (run / "tokenizer.model").symlink_to(TOKENIZER_V010)
    (run / "step-000200" / "tokenizer.model").symlink_to(step_tokenizer)
    return args


def sweep_ambiguous_name(c: Ctx) -> list[str]:
    for root in ("a", "b"):
        sweep_run(c, root=c.tmp / root, name="rr")
    c.monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{c.tmp / 'a'}{os.pathsep}{c.tmp / 'b'}")
    return replace_arg(sweep_run(c, name="unused"), "sweep", "rr")



BIG_INT = "1" + "0" * 5000  # json and tomllib raise a plain ValueError past 4300 digits (Python 3.11), not their decode errors


def symlinked_predictions_to_dev_zero(d: Path) -> None:
    (d / "predictions.jsonl").unlink()
    (d / "predictions.jsonl").symlink_to("/dev/zero")


def truncated_predictions(d: Path) -> None:
    """predictions.jsonl cut to its first row, and run.json without the hash that would catch it
    (its counts, as mweval writes them, say 3)."""
    unhashed_predictions(d, (d / "predictions.jsonl").read_bytes().split(b"\n", 1)[0] + b"\n")
    meta = json.loads((d / "run.json").read_text())
    (d / "run.json").write_text(json.dumps({**meta, "counts": {"entries": 3}}))


def check_out_link_kept(c: Ctx, r) -> None:
    """--out a symlink to an earlier run: the run it points to is rewritten, the link stays."""
    assert (c.tmp / "latest").is_symlink() and os.readlink(c.tmp / "latest") == "real"
    assert json.loads((c.tmp / "real" / "run.json").read_text())["counts"]["entries"] == 2
    assert [p.name for p in c.tmp.iterdir() if p.name.startswith(".")] == []  # no .latest.old-PID-N left


def no_torch(find_spec, name, *args):
    """importlib.util.find_spec on a machine without torch (the demo's venv)."""
    return None if name == "torch" else find_spec(name, *args)


def check_one_line_warnings(c: Ctx, r) -> None:
    assert all(s.startswith("warning: ") for s in r.stderr.splitlines()), r.stderr  # the key's "\n" did not start a line

CASES = [
    # ---- golden sets ------------------------------------------------------------------------
    Case("golden-dir-missing", E, lambda c: c.eval(c.tmp / "nope"), ("nope", "golden directory does not exist")),
    Case("golden-path-is-a-file", E, lambda c: c.eval(c.golden(good_lines()) / "g.jsonl"),
         ("g.jsonl", "golden path is not a directory")),
    Case("golden-dir-empty", E, lambda c: (c.tmp.joinpath("empty").mkdir(), c.eval(c.tmp / "empty"))[-1],
         ("empty", "has no *.jsonl files")),
    Case("golden-dir-without-jsonl", E,
         lambda c: c.eval(c.golden([line(GOOD)], file="rows.json")), ("/g", "has no *.jsonl files")),
    Case("golden-files-all-blank", E, lambda c: c.eval(c.golden(b"\n  \n")), ("/g", "golden set has no rows")),
    Case("golden-unknown-name", E,
         lambda c: (c.golden(good_lines(), name="sets/alpha"), c.golden(good_lines(), name="sets/beta"),
                    c.monkeypatch.setenv("MWEVAL_GOLDEN_PATH", str(c.tmp / "sets")), c.eval("gamma"))[-1],
         ("unknown golden set 'gamma'", "available:", "alpha", "beta")),
    Case("golden-not-utf8", E, lambda c: c.eval(c.golden(line(GOOD).encode() + b"\n{\"raw\": \"caf\xe9\"}\n")),
         ("/g/g.jsonl:2", "not UTF-8")),
    Case("golden-utf8-bom", A, lambda c: c.eval(c.golden(BOM + "\n".join(good_lines()).encode())),
         check=check_rows(2, ("g.jsonl:1", "g.jsonl:2"))),
    Case("golden-manifest-utf8-bom", A, lambda c: c.eval(manifest_with_bom(c)), check=check_manifest_ok_and_rows_counted(2)),
    Case("export-scores-over-another-file", E, export_over_another_file, ("not a scores JSON", "--force", "precious.txt")),
    Case("golden-crlf", A, lambda c: c.eval(c.golden("\r\n".join(good_lines()).encode() + b"\r\n")),
         check=check_rows(2, ("g.jsonl:1", "g.jsonl:2"))),
    Case("golden-cr-only", E, lambda c: c.eval(c.golden("\r".join(good_lines()).encode() + b"\r")),
         ("g/g.jsonl:1: malformed JSON (Extra data", "rows end in a bare CR; JSONL rows end in LF (or CRLF)")),
    Case("golden-blank-lines", S, lambda c: c.eval(c.golden(["", line(GOOD), "   \t", "", line(GOOD2), ""])),
         check=check_rows(2, ("g.jsonl:2", "g.jsonl:5"))),
    Case("golden-malformed-json", E, lambda c: c.eval(c.golden([line(GOOD), '{"raw": "1 Main St", "components": {']),),
         ("/g/g.jsonl:2", "malformed JSON")),
    Case("golden-json-nan-constant", E, lambda c: c.eval(c.golden(['{"raw": "1 Main St", "components": {}, "score": NaN}'])),
         ("/g/g.jsonl:1", "malformed JSON", "NaN")),
    Case("golden-row-is-array", E, lambda c: c.eval(c.golden([line(GOOD), '["12 Main St", {}]'])),
         ("/g/g.jsonl:2", "row is an array, not a JSON object")),
    Case("golden-row-is-string", E, lambda c: c.eval(c.golden(['"12 Main St"'])),
         ("/g/g.jsonl:1", "row is a string, not a JSON object")),
    Case("golden-raw-missing", E, lambda c: c.eval(c.golden([line({"components": {}})])), ("/g/g.jsonl:1", "row has no `raw`")),
    Case("golden-raw-not-string", E, lambda c: c.eval(c.golden([line({"raw": 12, "components": {}})])),
         ("/g/g.jsonl:1", "`raw` is a number, not a string")),
    Case("golden-raw-null", E, lambda c: c.eval(c.golden([line({"raw": None, "components": {}})])),
         ("/g/g.jsonl:1", "`raw` is null, not a string")),
    Case("golden-raw-empty", E, lambda c: c.eval(c.golden([line(GOOD), line({"raw": "", "components": {}})])),
         ("/g/g.jsonl:2", "`raw` is empty or whitespace only")),
    Case("golden-raw-whitespace", E, lambda c: c.eval(c.golden([line({"raw": " \t\u3000 ", "components": {}})])),
         ("/g/g.jsonl:1", "`raw` is empty or whitespace only")),
    Case("golden-components-missing", E, lambda c: c.eval(c.golden([line({"raw": "12 Main St"})])),
         ("/g/g.jsonl:1", "row has no `components`")),
    Case("golden-components-not-object", E,
         lambda c: c.eval(c.golden([line({"raw": "12 Main St", "components": ["Main St"]})])),
         ("/g/g.jsonl:1", "`components` is an array, not an object")),
    Case("golden-component-not-string", E,
         lambda c: c.eval(c.golden([line({"raw": "12 Main St", "components": {"house_number": 12}})])),
         ("/g/g.jsonl:1", "component 'house_number' is a number, not a string")),
    Case("golden-component-null", E,
         lambda c: c.eval(c.golden([line({"raw": "12 Main St", "components": {"street": None}})])),
         ("/g/g.jsonl:1", "component 'street' is null, not a string")),
    Case("golden-unknown-tag", W,
         lambda c: c.eval(c.golden([line({**GOOD, "components": {**GOOD["components"], "floor": "3"}}), line(GOOD2)])),
         ("gold tags outside the checkpoint's label set are not scored: floor (1)",),
         check=check_audit("gold_tags_outside_labels", {"floor": 1})),
    Case("golden-component-whitespace-only", A,
         lambda c: c.eval(c.golden([line({**GOOD, "components": {**GOOD["components"], "locality": "   "}})]), "--profile", "upstream-eval"),
         check=check_audit("unreachable_examples", [{"id": "g.jsonl:1", "tag": "locality", "value": "   ", "reason": "only whitespace"}])),
    Case("golden-value-not-in-raw", A,
         lambda c: c.eval(c.golden([line({**GOOD, "components": {**GOOD["components"], "locality": "Chicago"}})])),
         check=check_audit("values_not_in_raw", 1)),
    Case("golden-duplicate-rows", A, lambda c: c.eval(c.golden([line(GOOD), line(GOOD2), line(GOOD)])),
         check=both(check_audit("duplicate_rows", 1), check_rows(3))),
    Case("golden-row-nested-too-deeply", E, lambda c: c.eval(c.golden([line(GOOD), '{"raw": "12 Main St", "components": {}, "x": ' + DEEP + "}"])),
         ("/g/g.jsonl:2", "malformed JSON (maximum recursion depth exceeded")),
    Case("golden-manifest-nested-too-deeply", E,
         lambda c: c.eval((lambda g: (g / "MANIFEST.json").write_text('{"files": ' + DEEP + "}") and g)(c.golden(good_lines()))),
         ("/g/MANIFEST.json", "maximum recursion depth exceeded")),
    Case("golden-manifest-sha256-mismatch", W, lambda c: c.eval(manifest(c, sha="0" * 64)),
         ("golden set does not match its manifest", "g.jsonl: sha256"), check=check_manifest_mismatch),
    Case("golden-manifest-count-mismatch", W, lambda c: c.eval(manifest(c, entries=5)),
         ("golden set does not match its manifest", "g.jsonl: 2 rows != manifest 5"), check=check_manifest_mismatch),
    Case("golden-manifest-entry-checks-nothing", W, lambda c: c.eval(manifest(c, entry={})),
         ("golden set does not match its manifest", "g.jsonl: the manifest gives neither its sha256 nor its row count"),
         check=check_manifest_mismatch),
    # a file starting with a line of only its BOM, and a line of only NBSP: blank lines, as read_jsonl strips them
    Case("golden-line-of-only-nbsp-or-bom", A, lambda c: c.eval(manifest(c, lines=["\ufeff", line(GOOD), "\u00a0", line(GOOD2)])),
         check=check_manifest_ok_and_rows_counted(2)),
    Case("golden-verify-split-given-as-dot", E, split_as_dot, ("v0.1.2/dev: manifest mismatch", "fr.jsonl")),
    Case("golden-verify-mismatch", W, lambda c: ["golden", "verify", str(manifest(c, sha="0" * 64))],
         ("g.jsonl: sha256",), check=check_verify_warns),
    Case("golden-verify-strict-sha256-mismatch", E, lambda c: ["golden", "verify", "--strict", str(manifest(c, sha="0" * 64))],
         ("MANIFEST.json", "manifest mismatch", "g.jsonl: sha256")),
    Case("golden-verify-strict-count-mismatch", E, lambda c: ["golden", "verify", "--strict", str(manifest(c, entries=7))],
         ("MANIFEST.json", "manifest mismatch", "g.jsonl: 2 rows != manifest 7")),
    Case("golden-raw-10000-chars", W, lambda c: c.eval(c.golden(long_rows(c))),
         ("1 entries exceed 128 pieces and were truncated",), check=check_truncation),
    Case("golden-raw-over-128-pieces", W, lambda c: c.eval(c.golden(over_128_rows(c))),
         ("1 entries exceed 128 pieces and were truncated",), check=check_truncation),
    Case("golden-control-chars-in-raw", A,
         lambda c: c.eval(c.golden([line({"raw": CONTROL_RAW, "components": {"street": "Main\x00 St", "postcode": "62701"}})])),
         check=check_control_chars),
    Case("golden-unpaired-surrogate-raw", E, lambda c: c.eval(c.golden([r'{"raw": "12 Main St \ud800", "components": {}}'])),
         ("/g/g.jsonl:1", "unpaired UTF-16 surrogate")),
    Case("golden-unpaired-surrogate-component", E,
         lambda c: c.eval(c.golden([line(GOOD), r'{"raw": "12 Main St", "components": {"street": "Main \udc00"}}'])),
         ("/g/g.jsonl:2", "unpaired UTF-16 surrogate")),
    Case("golden-paired-surrogate-escape", A,
         lambda c: c.eval(c.golden([r'{"raw": "12 Main St \ud83d\ude00, IL 62701", "components": {"postcode": "62701"}}'])),
         check=check_rows(1)),
    # ---- checkpoints ------------------------------------------------------------------------
    Case("ckpt-rows-beyond-position-table", E, lambda c: c.eval(ckpt=short_position_checkpoint(c.tmp / "maxpos8", 8)),
         ("maxpos8/config.json", "2 entries have more pieces than the checkpoint's max_position_embeddings 8 (first: g.jsonl:1, 12 pieces)")),
    Case("ckpt-path-missing", E, lambda c: c.eval(ckpt=c.tmp / "step-000999"), ("step-000999", "checkpoint path does not exist")),
    Case("ckpt-name-not-found", E, lambda c: c.eval(ckpt="step-424242"),
         ("checkpoint 'step-424242' not found (not a path; searched bundled demo runs (", "demo/runs)); did you mean step-002200?")),
    Case("ckpt-not-a-checkpoint-dir", E, lambda c: c.eval(ckpt=c.golden(good_lines())),
         ("/g", "not a checkpoint: no pytorch_model.bin, config.json or model.onnx")),
    Case("ckpt-file-not-onnx", E, lambda c: c.eval(ckpt=TOKENIZER_V010), ("tokenizer-v0.1.0.model", "not a checkpoint: a file that is not .onnx")),
    Case("ckpt-ambiguous-step-name", E, lambda c: (ambiguous_root(c), c.eval(ckpt="step-000300"))[-1],
         ("checkpoint name 'step-000300' is ambiguous in MWEVAL_CKPT_PATH", "runA/step-000300", "runB/step-000300", "RUN/STEP")),
    Case("ckpt-root-not-a-directory", E, lambda c: c.eval(None, "--ckpt-root", str(c.tmp / "ckpts"), ckpt="step-002200"),
         ("ckpts: --ckpt-root is not a directory",)),
    Case("ckpt-env-root-missing-name-in-demo", E,
         lambda c: (c.monkeypatch.setenv("MWEVAL_CKPT_PATH", str(c.tmp / "ckpts")), c.eval(ckpt="step-002200"))[-1],
         ("MWEVAL_CKPT_PATH names ", "ckpts, not a directory: checkpoint 'step-002200' could be there; elsewhere it is only "
          "the bundled demo checkpoint of that name (fix MWEVAL_CKPT_PATH, or give a path)")),
    Case("ckpt-env-root-missing-name-found-elsewhere", A,
         lambda c: (ambiguous_root(c), c.monkeypatch.setenv("MWEVAL_CKPT_PATH", f"{c.tmp / 'gone'}{os.pathsep}{os.environ['MWEVAL_CKPT_PATH']}"),
                    c.eval(ckpt="runB/step-000300"))[-1],
         check=check_ckpt_name("runB/step-000300")),
    Case("sweep-env-root-missing-run-in-demo", E,
         lambda c: (c.monkeypatch.setenv("MWEVAL_CKPT_PATH", str(c.tmp / "runs")), replace_arg(sweep_run(c, name="unused"), "sweep", "regressed"))[-1],
         ("MWEVAL_CKPT_PATH names ", "runs, not a directory: run 'regressed' could be there; elsewhere it is only the bundled demo run")),
    Case("ckpt-run-step-disambiguates", A, lambda c: (ambiguous_root(c), c.eval(ckpt="runB/step-000300"))[-1],
         check=check_ckpt_name("runB/step-000300")),
    Case("ckpt-bin-missing", E, lambda c: c.eval(ckpt=c.ckpt_copy(with_bin=False)), ("ck/pytorch_model.bin", "checkpoint has no pytorch_model.bin")),
    Case("ckpt-bin-empty", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_bytes=b"")), ("ck/pytorch_model.bin", "not a torch.save zip archive")),
    Case("ckpt-bin-truncated", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_bytes=truncated_bin(c))),
         ("ck/pytorch_model.bin", "not a torch.save zip archive (truncated or corrupt?)")),
    Case("ckpt-bin-short-storage", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_bytes=short_storage_bin(c))),
         ("ck/pytorch_model.bin", "cannot read the state dict", "lies outside its storage of 2 elements")),
    Case("ckpt-bin-pickle-length-bomb", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_bytes=bomb_pickle_bin(c))),
         ("ck/pytorch_model.bin", "cannot read the state dict", "expected 1099511627776 bytes")),
    Case("ckpt-bin-expanded-view", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_obj=expanded_state(c))),
         ("ck/pytorch_model.bin", "cannot read the state dict", "holds more elements than its storage of 1 (an expanded view)")),
    Case("ckpt-bin-list", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_obj=[1, 2, 3])), ("ck/pytorch_model.bin", "does not hold a state dict")),
    Case("ckpt-bin-int-keys", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_obj={1: __import__("torch").zeros(2)})),
         ("ck/pytorch_model.bin", "does not hold a state dict")),
    Case("ckpt-bin-pickled-module", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_obj=__import__("torch").nn.Linear(2, 2))),
         ("ck/pytorch_model.bin", "cannot read the state dict", "is not allowed in a state dict")),
    Case("ckpt-bin-byteorder-unknown", E,
         lambda c: c.eval(ckpt=c.ckpt_copy(bin_bytes=rezip((TINY_STEP / "pytorch_model.bin").read_bytes(), replace={"/byteorder": b"middle"}))),
         ("ck/pytorch_model.bin", "unknown byte order b'middle' in the torch archive (torch writes 'little' or 'big')")),
    Case("ckpt-weights-nan", E, lambda c: c.eval(ckpt=c.ckpt_copy(bin_obj=nan_state(c))),
         ("ck/pytorch_model.bin", "weights contain NaN", "final_ln.weight")),
    Case("ckpt-config-malformed", E, lambda c: c.eval(ckpt=c.ckpt_copy(config='{"vocab_size": 16000,')),
         ("ck/config.json", "malformed config.json")),
    Case("ckpt-config-nested-too-deeply", E, lambda c: c.eval(ckpt=c.ckpt_copy(config='{"vocab_size": ' + DEEP + "}")),
         ("config.json", "malformed config.json (maximum recursion depth exceeded")),
    Case("ckpt-config-missing", E, lambda c: c.eval(ckpt=(lambda d: ((d / "config.json").unlink(), d)[1])(c.ckpt_copy())),
         ("ck/config.json", "checkpoint has no config.json")),
    Case("ckpt-config-missing-keys", E,
         lambda c: c.eval(ckpt=c.ckpt_copy(config={k: v for k, v in c.config().items() if k not in ("hidden_size", "num_labels")})),
         ("ck/config.json", "config.json is missing keys: hidden_size, num_labels")),
    Case("ckpt-config-bad-value", E, lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(hidden_size="64"))),
         ("ck/config.json", "'hidden_size' must be a positive integer")),
    Case("ckpt-config-pad-token-not-int", E, lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(pad_token_id="0"))),
         ("ck/config.json", "pad_token_id must be null or an integer")),
    Case("ckpt-config-pad-token-null", A, lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(pad_token_id=None))), check=check_rows(2)),
    Case("ckpt-config-pad-token-null-torch", A,
         lambda c: c.eval(None, "--engine", "torch", ckpt=c.ckpt_copy(config=c.config(pad_token_id=None))), check=check_rows(2)),
    Case("ckpt-labels-arg-on-pytorch", E, lambda c: c.eval(None, "--labels", "O,B-a,I-a", ckpt=c.ckpt_copy()),
         ("ck", "--labels applies to ONNX models; a PyTorch checkpoint's labels are its config.json's")),
    Case("ckpt-pad-to-on-pytorch", E, lambda c: c.eval(None, "--pad-to", "own", ckpt=c.ckpt_copy()),
         ("ck", "--pad-to own applies to ONNX models")),
    Case("onnx-engine-torch", E, lambda c: c.eval(None, "--engine", "torch", ckpt=c.onnx_dir() / "model.onnx"),
         ("onx/model.onnx", "--engine torch applies to PyTorch checkpoints; an ONNX model runs in onnxruntime")),
    Case("ckpt-config-id2label-list", E,
         lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(id2label=list(c.config()["id2label"].values())))),
         ("ck/config.json", "id2label is not an object")),
    Case("ckpt-config-id2label-not-strings", E,
         lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(id2label={str(i): i for i in range(21)}))),
         ("ck/config.json", "id2label values must be non-empty strings")),
    Case("ckpt-state-dict-shapes-vs-config", E, lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(hidden_size=32))),
         ("ck/pytorch_model.bin", "state dict does not match config.json", "shape mismatches: token_embeddings.weight (16000, 64)!=(16000, 32)")),
    Case("ckpt-state-dict-keys-vs-config", E, lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(num_hidden_layers=3))),
         ("ck/pytorch_model.bin", "missing keys: blocks.2.ln1.weight")),
    Case("ckpt-state-dict-unexpected-keys", E, lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(use_crf=False))),
         ("ck/pytorch_model.bin", "unexpected keys: crf.transitions")),
    Case("ckpt-labels-vs-classifier-rows", E,
         lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(
             num_labels=23, id2label={**c.config()["id2label"], "21": "B-unit", "22": "I-unit"}))),
         ("ck/pytorch_model.bin", "classifier.weight (21, 64)!=(23, 64)")),
    Case("ckpt-id2label-vs-num-labels", E,
         lambda c: c.eval(ckpt=c.ckpt_copy(config=c.config(id2label={**c.config()["id2label"], "21": "B-unit"}))),
         ("ck/config.json", "22 labels (config.json id2label) but num_labels = 21")),
    Case("tokenizer-not-found", E, lambda c: c.eval(tokenizer=None),
         ("no tokenizer found for tiny-v040/step-000300", "tokenizer.model", "training_state.json", "pass --tokenizer")),
    Case("tokenizer-path-missing", E, lambda c: c.eval(tokenizer=c.tmp / "tok.model"), ("tok.model", "tokenizer file not found")),
    Case("tokenizer-corrupt", E, lambda c: (c.tmp.joinpath("tok.model").write_bytes(b"\x0a\xff not a model" * 50),
                                             c.eval(tokenizer=c.tmp / "tok.model"))[-1],
         ("tok.model", "not a SentencePiece model (INTERNAL: could not parse ModelProto)"), subprocess=True),
    Case("tokenizer-empty", E, lambda c: (c.tmp.joinpath("tok.model").write_bytes(b""), c.eval(tokenizer=c.tmp / "tok.model"))[-1],
         ("tok.model", "not a SentencePiece model"), subprocess=True),
    Case("tokenizer-vocab-larger-than-embedding", E, lambda c: c.eval(tokenizer=EN_US / "tokenizer.model"),
         ("tokenizer.model", "tokenizer vocab 73143 is larger than the model's embedding (16000 rows)")),
    Case("onnx-truncated", E, lambda c: c.eval(ckpt=onnx_truncated(c)), ("model.onnx", "not a loadable ONNX model"), subprocess=True),
    Case("onnx-without-logits-output", E, lambda c: c.eval(ckpt=onnx_without_logits(c)),
         ("renamed.onnx", "ONNX graph has no `logits` output (outputs: scores)"), subprocess=True),
    Case("onnx-nan-logits", E, lambda c: c.eval(ckpt=onnx_nan_logits(c)),
         ("nan.onnx", "NaN or infinite logits for 2 of 2 entries (first: g.jsonl:1)"), subprocess=True),
    Case("onnx-label-dim-vs-labels-arg", E, lambda c: c.eval(None, "--labels", "O,B-a,I-a,B-b,I-b", ckpt=c.onnx_dir() / "model.onnx"),
         ("onx/model.onnx", "ONNX logits have 21 labels but the label list (--labels) has 5"), subprocess=True),
    Case("onnx-label-dim-vs-model-card", E,
         lambda c: c.eval(ckpt=c.onnx_dir(card={"labels": ["O", "B-street", "I-street"]})),
         ("onx/model.onnx", "ONNX logits have 21 labels but the label list (model-card.json labels) has 3")),
    Case("onnx-model-card-without-labels", E, lambda c: c.eval(ckpt=c.onnx_dir(card={"version": "1.0.0"})),
         ("onx/model-card.json", "model-card.json has no `labels`; pass --labels")),
    Case("onnx-model-card-malformed", E, lambda c: (c.onnx_dir(), c.tmp.joinpath("onx", "model-card.json").write_text("{"),
                                                     c.eval(ckpt=c.tmp / "onx"))[-1],
         ("onx/model-card.json", "malformed model-card.json")),
    Case("onnx-model-card-not-an-object", E, lambda c: c.eval(ckpt=c.onnx_dir(card=["O", "B-street"])),
         ("onx/model-card.json", "malformed model-card.json (not a JSON object)")),
    Case("onnx-model-card-requires-not-an-object", E,
         lambda c: c.eval(ckpt=c.onnx_dir(card={"labels": list(__import__("mailwoman_eval.labels").labels.V040_LABELS), "requires": ["anchor"]})),
         ("onx/model-card.json", "`requires` is not an object")),
    Case("onnx-labels-file-missing", E, lambda c: c.eval(None, "--labels", "labels.json", ckpt=c.onnx_dir() / "model.onnx"),
         ("labels.json", "--labels file not found")),
    Case("onnx-labels-file-not-utf8", E,
         lambda c: (c.tmp.joinpath("labels.txt").write_bytes(b"O\nB-st\xe9\n"),
                    c.eval(None, "--labels", str(c.tmp / "labels.txt"), ckpt=c.onnx_dir() / "model.onnx"))[-1],
         ("labels.txt", "cannot read --labels file")),
    # ---- outputs ----------------------------------------------------------------------------
    Case("out-not-writable", E, lambda c: (setattr(c, "out", not_writable_out(c)), c.eval())[-1],
         ("run", "cannot create output directory")),
    Case("out-is-a-file", E, lambda c: (c.out.write_text("x"), c.eval())[-1], ("out", "output path exists and is not a directory")),
    Case("out-non-empty-not-mweval", E, lambda c: (c.out.mkdir(), (c.out / "notes.txt").write_text("mine"), c.eval())[-1],
         ("out", "not empty and holds no mweval run.json", "--force")),
    Case("diagnose-ckpt-into-a-foreign-runs-dir", E, diagnose_into_a_foreign_runs_dir,
         ("runs/", "not empty and holds no mweval run.json", "move it away, or run `mweval eval --out DIR` and pass that run")),
    Case("out-non-empty-force", A, lambda c: (c.out.mkdir(), (c.out / "notes.txt").write_text("mine"), c.eval(None, "--force"))[-1],
         check=check_forced),
    Case("out-previous-run-replaced", A, lambda c: (previous_run(c), c.eval())[-1], check=check_replaced),
    Case("out-gate-non-empty-not-mweval", E, lambda c: (c.out.mkdir(), (c.out / "notes.txt").write_text("mine"), gate_args(c))[-1],
         ("out", "holds no mweval verdict.json", "--force")),
    Case("out-compare-non-empty-not-mweval", E,
         lambda c: (c.out.mkdir(), (c.out / "notes.txt").write_text("mine"), compare_args(c))[-1],
         ("out", "holds no mweval compare.json", "--force")),
    Case("write-disk-full-new-run", E, lambda c: (fail_replace_of("predictions.jsonl", ENOSPC)(c), c.eval())[-1],
         ("out/predictions.jsonl", "cannot write: No space left on device")),
    Case("write-disk-full-over-previous-run", E,
         lambda c: (previous_run(c), fail_replace_of("predictions.jsonl", ENOSPC)(c), c.eval())[-1],
         ("out/predictions.jsonl", "cannot write: No space left on device")),
    Case("write-disk-full-gate", E, lambda c: (fail_replace_of("junit.xml", ENOSPC)(c), gate_args(c))[-1],
         ("out/junit.xml", "cannot write: No space left on device")),
    # ---- gate / compare inputs --------------------------------------------------------------
    Case("thresholds-malformed-toml", E, lambda c: thresholds(c, "[defaults]\nmax_drop_pp = = 1\n"),
         ("th.toml", "malformed TOML", "line 2")),
    Case("thresholds-unknown-key", E, lambda c: thresholds(c, "[defaults]\nmax_drop = 1.0\n"),
         ("th.toml", "unknown key 'max_drop' in [defaults]")),
    Case("thresholds-unknown-tag-key", E, lambda c: thresholds(c, "[tags.postcode]\nmin_f2 = 90\n"),
         ("th.toml", "unknown key 'min_f2' in [tags.postcode]")),
    Case("thresholds-unknown-section", E, lambda c: thresholds(c, "[gate]\nalpha = 0.1\n"), ("th.toml", "unknown section(s): gate")),
    Case("thresholds-bad-value", E, lambda c: thresholds(c, '[defaults]\nalpha = "0.05"\n'), ("th.toml", "alpha must be a finite number")),
    Case("thresholds-nested-too-deeply", E, lambda c: thresholds(c, "[defaults]\nviews = " + DEEP + "\n"),
         ("th.toml", "malformed TOML (maximum recursion depth exceeded")),
    Case("thresholds-min-f1-as-a-fraction", E, lambda c: thresholds(c, "[tags.postcode]\nmin_f1 = 0.95\n"),
         ("th.toml [tags.postcode]", "min_f1 0.95 looks like a fraction; it is in percent (e.g. 95 for 0.95)")),
    Case("thresholds-nan", E, lambda c: thresholds(c, "[defaults]\nmax_drop_pp = nan\n"), ("th.toml", "max_drop_pp must be a finite number, not nan")),
    Case("thresholds-alpha-unreachable", E, lambda c: thresholds(c, "[defaults]\nalpha = 0.0004\n"),
         ("th.toml", "alpha 0.0004 cannot be reached for", "set resamples (--resamples, or in the thresholds) to at least")),
    Case("thresholds-tag-not-scored", E, lambda c: thresholds(c, "[tags.unit]\nmin_f1 = 90\n"),
         ("th.toml", "thresholds name tags not scored in these runs: unit")),
    Case("thresholds-not-utf8", E, lambda c: thresholds(c, b"[defaults]\n# \xff\n"), ("th.toml", "cannot read thresholds file")),
    Case("thresholds-missing", E, lambda c: replace_arg(thresholds(c, ""), "--thresholds", c.tmp / "none.toml"),
         ("none.toml", "thresholds file not found")),
    Case("gate-baseline-other-golden", E, lambda c: gate_args(c, {"golden_sha": "a" * 64}, {"golden_sha": "b" * 64}),
         ("golden sets differ", "--allow-mismatch")),
    Case("gate-baseline-other-profile", E, lambda c: gate_args(c, {"profile": "upstream-eval"}, {"profile": "runtime"}),
         ("profiles differ: upstream-eval vs runtime", "--allow-mismatch")),
    Case("compare-baseline-other-golden", E, lambda c: compare_args(c, {"golden_sha": "a" * 64}, {"golden_sha": "b" * 64}),
         ("golden sets differ", "--allow-mismatch")),
    Case("compare-baseline-other-profile", E, lambda c: compare_args(c, {"profile": "runtime"}, {"profile": "upstream-eval"}),
         ("profiles differ: runtime vs upstream-eval", "--allow-mismatch")),
    Case("compare-golden-on-saved-runs", E, lambda c: compare_args(c) + ["--golden", str(REPO / "golden" / "demo-v1")],
         ("was scored on hand", "a saved run is not re-scored (--golden applies when a checkpoint is evaluated)")),
    Case("gate-baseline-missing", E, lambda c: replace_arg(gate_args(c), "--baseline", c.tmp / "nope"),
         ("nope", "is not a run directory")),
    Case("diagnose-run-with-another-profile", E,
         lambda c: edited_run(c, lambda d: None) + ["--profile", "runtime"],
         ("--profile runtime, but", "base was scored with profile upstream-eval", "is not re-scored")),
    Case("diagnose-run-with-its-own-profile", A, lambda c: edited_run(c, lambda d: None) + ["--profile", "upstream-eval"]),
    Case("compare-runs-with-an-eval-option", E, lambda c: compare_args(c) + ["--engine", "torch"],
         ("--engine applies only when a checkpoint is evaluated",)),
    Case("gate-runs-with-an-eval-option", E, lambda c: gate_args(c) + ["--tokenizer", "t.model"],
         ("--tokenizer applies only when a checkpoint is evaluated",)),
    Case("engine-torch-without-torch", E,
         lambda c: (c.monkeypatch.setattr(importlib.util, "find_spec", functools.partial(no_torch, importlib.util.find_spec)),
                    c.eval(None, "--engine", "torch"))[-1],
         ("--engine torch needs torch: pip install -e '.[torch]' in a checkout (torch==2.13.0, the CPU build)",)),
    Case("cache-not-a-directory", W,
         lambda c: (c.tmp.joinpath("cachefile").write_text("x"), c.monkeypatch.setenv("MWEVAL_CACHE", str(c.tmp / "cachefile")),
                    [a for a in c.eval() if a != "--no-cache"])[-1],
         ("cachefile cannot be written (Not a directory); runs are not cached (set MWEVAL_CACHE, or pass --no-cache)",),
         check=check_rows(2)),
    Case("export-scores-out-is-a-directory", E,
         lambda c: (c.tmp.joinpath("ci").mkdir(), ["export-scores", "--run", str(c.runs()[0]), "--out", str(c.tmp / "ci")])[-1],
         ("ci: --out is a directory; give the JSON file to write (e.g. ci/baseline-scores.json)",)),
    Case("diagnose-out-is-a-directory", E,
         lambda c: (c.tmp.joinpath("rep").mkdir(), [a for a in edited_run(c, lambda d: None) if a != "--no-html"] + ["--out", "rep"])[-1],
         ("rep: --out is a directory",)),
    Case("diagnose-out-ends-with-a-slash", E, lambda c: [a for a in edited_run(c, lambda d: None) if a != "--no-html"] + ["--out", "newdir/"],
         ("newdir/: --out is a directory",)),  # it wrote a file named newdir
    Case("gate-out-not-mweval-refused-before-evaluating", E,
         lambda c: (c.tmp.joinpath("mine").mkdir(), c.tmp.joinpath("mine", "notes.txt").write_text("x"),
                    ["gate", "--baseline", str(TINY_STEP), "--candidate", str(TINY_STEP), "--golden", str(c.golden(good_lines())),
                     "--tokenizer", str(TOKENIZER_V010), "--out", "mine", "-q"])[-1],
         ("mine: output directory is not empty and holds no mweval verdict.json",)),  # no runs/ left by two evaluations
    Case("compare-saved-run-and-checkpoint-other-golden", E,
         lambda c: ["compare", str(c.runs()[0]), str(TINY_STEP), "--golden", str(c.golden(good_lines())),
                    "--tokenizer", str(TOKENIZER_V010), "--out", str(c.out), "-q"],
         ("golden sets differ: ", "base was scored on hand sha256 gggggggggggg, the checkpoint would be evaluated on g sha256",
          "(use --allow-mismatch to compare anyway)")),  # refused before the evaluation: no runs/ written
    Case("gate-saved-run-and-checkpoint-other-profile", E,
         lambda c: ["gate", "--baseline", str(c.runs()[0]), "--candidate", str(TINY_STEP), "--golden", str(c.golden(good_lines())),
                    "--tokenizer", str(TOKENIZER_V010), "--out", str(c.out), "-q"],
         ("profiles differ: ", "base was scored with upstream-eval, the checkpoint would be evaluated with runtime",)),
    Case("run-json-corrupt", E, lambda c: edited_run(c, lambda d: (d / "run.json").write_text('{"schema": ')),
         ("base/run.json", "unreadable run.json")),
    Case("run-json-nested-too-deeply", E, lambda c: edited_run(c, lambda d: (d / "run.json").write_text('{"schema": ' + DEEP + "}")),
         ("base/run.json", "unreadable run.json", "maximum recursion depth exceeded")),
    Case("run-json-not-a-run", E, lambda c: edited_run(c, lambda d: (d / "run.json").write_text('{"schema": "mweval.run/1"}')),
         ("base/run.json", "run.json is incomplete", "tags")),
    Case("run-predictions-edited", E,
         lambda c: edited_run(c, lambda d: (d / "predictions.jsonl").write_text((d / "predictions.jsonl").read_text()[:-40] + "\n")),
         ("base/predictions.jsonl", "does not match run.json")),
    Case("run-predictions-not-utf8", E,
         lambda c: edited_run(c, lambda d: unhashed_predictions(d, (d / "predictions.jsonl").read_bytes().replace(b"\n", b"\n\xff", 1))),
         ("base/predictions.jsonl:2", "not UTF-8")),
    Case("run-prediction-row-mistyped", E,
         lambda c: edited_run(c, lambda d: unhashed_predictions(d, second_row(d, lambda r: r.update(adversarial="yes", conf=None)))),
         ("base/predictions.jsonl:2", "prediction row lacks or mistypes adversarial, conf")),
    Case("run-prediction-value-not-a-string", E,
         lambda c: edited_run(c, lambda d: unhashed_predictions(d, second_row(d, lambda r: r["pred"].update(region={"value": 7})))),
         ("base/predictions.jsonl:2", "prediction row lacks or mistypes pred values")),
    Case("scores-entry-malformed", E, lambda c: scores_with(c, lambda doc: doc["entries"][1].update(sums=[1, 2])),
         ("scores.json", "scores entry 1 is malformed")),
    Case("scores-baseline-without-entries", E,
         lambda c: (c.tmp.joinpath("scores.json").write_text('{"schema": "mweval.scores/1"}'),
                    replace_arg(gate_args(c), "--baseline", c.tmp / "scores.json"))[-1],
         ("scores.json", "scores file is incomplete")),
    # ---- sweep and parity -------------------------------------------------------------------
    # ---- one thing given where another goes: the error says what it is and what to do ----------
    Case("diagnose-run-is-a-checkpoint-name", E, lambda c: ["diagnose", "--run", "step-002200", "--no-html"],
         ("step-002200: run directory does not exist; 'step-002200' names the checkpoint regressed/step-002200: "
          "evaluate it with --ckpt step-002200 --golden …",)),
    Case("diagnose-run-is-a-checkpoint-dir", E, lambda c: ["diagnose", "--run", str(TINY_STEP), "--no-html"],
         ("step-000300: not an mweval run directory (no run.json); it is a checkpoint: evaluate it with --ckpt … --golden …",)),
    Case("diagnose-run-is-a-scores-json", E,
         lambda c: (c.tmp.joinpath("s.json").write_text("{}"), ["diagnose", "--run", str(c.tmp / "s.json"), "--no-html"])[-1],
         ("s.json: not a run directory: a scores JSON (export-scores) holds no entries: give the run directory it came from",)),
    Case("gate-candidate-is-a-scores-json", E,
         lambda c: (c.tmp.joinpath("s.json").write_text("{}"), replace_arg(gate_args(c), "--candidate", c.tmp / "s.json"))[-1],
         ("s.json: a scores JSON can only be the baseline (compare's BASE, gate's --baseline)",)),
    Case("ckpt-is-a-training-run", E, lambda c: c.eval(ckpt=TINY),
         ("tiny-v040: not a checkpoint: a training run with 2 steps (step-000150 … step-000300); name one, e.g. "
          "tiny-v040/step-000300, or evaluate them all with mweval sweep",)),
    Case("sweep-run-is-a-step", E, lambda c: replace_arg(sweep_run(c, name="unused"), "sweep", TINY_STEP),
         ("step-000300: no step-* checkpoint directories", "; it is a checkpoint: sweep takes its training run, ")),
    Case("golden-split-missing", E, lambda c: c.eval("demo-v1/dev"),
         ("golden set demo-v1 has no 'dev' split (a split is a dev/ directory of *.jsonl inside the set)",)),
    Case("golden-pull-from-missing-dir", E, lambda c: ["golden", "pull", "v0.1.2", "--from", str(c.tmp / "nope")],
         ("nope: --from is neither a directory nor a URL",)),
    Case("sweep-train-log-overflow", E, lambda c: sweep_run(c, "step,lr\n1e400,0.001\n"),
         ("run/train_log.csv:2", "is not a number")),
    Case("sweep-train-log-line-after-blank-lines", E, lambda c: sweep_run(c, "step,lr\n\n\n\n100,0.001\n200,abc\n"),
         ("run/train_log.csv:6", "is not a number")),
    Case("sweep-train-log-field-too-large", E, lambda c: sweep_run(c, "step,lr\n100," + "9" * 140_000 + "\n"),
         ("run/train_log.csv:2", "malformed train_log.csv", "field larger than field limit")),
    Case("sweep-training-state-truncated", E,
         lambda c: sweep_run(c, state=(TINY_STEP / "training_state.json").read_bytes()[:300]),
         ("run/step-000200/training_state.json:", "malformed training_state.json")),
    Case("sweep-steps-with-different-tokenizers", E,
         lambda c: sweep_run(c, step_tokenizer=REPO / "demo" / "runs" / "baseline" / "tokenizer.model"),
         ("run: the steps of this run use different tokenizers", "step-000200")),
    Case("sweep-steps-with-different-labels", E,
         lambda c: sweep_run(c, step_config={"id2label": {str(i): f"B-x{i}" if i else "O" for i in range(21)}}),
         ("run: the steps of this run use different label lists (step-000200 against step-000100: adds B-x1,",
          "their scores do not compare")),
    Case("sweep-view-with-nothing-to-score", E, lambda c: sweep_run(c) + ["--view", "adversarial_only"],
         ("the view adversarial_only holds no gold value to score", "choose another --view")),
    Case("diagnose-json-with-console-options", E, lambda c: edited_run(c, lambda d: None) + ["--json", "--seed", "3", "--examples-per-bucket", "1"],
         ("--examples-per-bucket and --seed choose the console's examples; --json prints none",)),
    Case("diagnose-out-with-no-html", E, lambda c: edited_run(c, lambda d: None) + ["--no-html", "--out", str(c.tmp / "r.html")],
         ("--out names the HTML report, which --no-html skips",)),
    Case("diagnose-saved-run-with-no-cache", E, lambda c: edited_run(c, lambda d: None) + ["--no-cache"],
         ("--no-cache applies only when a checkpoint is evaluated, and every input here is a saved run",)),
    Case("diagnose-tags-naming-no-tag", E, lambda c: edited_run(c, lambda d: None) + ["--tags", " , "],
         ("--tags ' , ' names no tag",)),
    Case("sweep-run-name-ambiguous", E, sweep_ambiguous_name, ("run name 'rr' is ambiguous in MWEVAL_CKPT_PATH", "give a path")),
    Case("parity-onnx-nan-logits", E,
         lambda c: ["parity", "--ckpt", str(TINY_STEP), "--onnx", str(onnx_nan_logits(c)), "--golden", str(c.golden(good_lines())),
                    "--tokenizer", str(TOKENIZER_V010), "--out", str(c.out), "-q"],
         ("nan.onnx", "the model produced NaN or infinite logits for 2 of 2 entries (first: g.jsonl:1)")),
    Case("parity-same-onnx-twice", E,
         lambda c: (lambda d: ["parity", "--ckpt", str(TINY_STEP), "--onnx", str(d / "model.onnx"), "--onnx", str(d / ".." / "onx" / "model.onnx"),
                               "--golden", str(c.golden(good_lines())), "--tokenizer", str(TOKENIZER_V010), "--out", str(c.out), "-q"])(c.onnx_dir()),
         ("onx/../onx/model.onnx", "the same ONNX file is given twice (as ", "/onx/model.onnx and as ")),
    # ---- the hostile-input audit: numbers, sizes and files no reader expected ---------------------
    Case("golden-manifest-int-over-4300-digits", E,
         lambda c: c.eval((lambda g: ((g / "MANIFEST.json").write_text('{"files": {"g.jsonl": {"entries": ' + BIG_INT + "}}}"), g)[-1])(c.golden(good_lines()))),
         ("/g/MANIFEST.json", "unreadable manifest (Exceeds the limit (4300 digits)")),
    Case("run-json-int-over-4300-digits", E,
         lambda c: edited_run(c, lambda d: (d / "run.json").write_text('{"counts": {"entries": ' + BIG_INT + "}, " + (d / "run.json").read_text()[1:])),
         ("base/run.json", "Exceeds the limit (4300 digits)")),
    Case("scores-int-over-4300-digits", E,
         lambda c: (lambda args: ((c.tmp / "scores.json").write_text((c.tmp / "scores.json").read_text().replace('"adv": 0', '"adv": ' + BIG_INT, 1)), args)[-1])(scores_with(c, lambda doc: None)),
         ("scores.json", "Exceeds the limit (4300 digits)")),
    Case("thresholds-int-over-4300-digits", E, lambda c: thresholds(c, "[defaults]\nmin_support = " + BIG_INT + "\n"),
         ("th.toml", "malformed TOML", "4300 digits")),
    Case("sweep-training-state-int-over-4300-digits", E,
         lambda c: sweep_run(c, state=b'{"config": {"train": {"learning_rate": ' + BIG_INT.encode() + b"}}}"),
         ("training_state.json", "malformed training_state.json", "4300 digits")),
    Case("run-json-profile-name-mistyped", E,
         lambda c: edited_run(c, lambda d: (d / "run.json").write_text((d / "run.json").read_text().replace('"name": "upstream-eval"', '"name": ["upstream-eval"]', 1))),
         ("base/run.json", "run.json is incomplete")),
    Case("run-prediction-row-without-file", E,
         lambda c: edited_run(c, lambda d: unhashed_predictions(d, second_row(d, lambda r: r.pop("file")))),
         ("base/predictions.jsonl:2", "prediction row lacks or mistypes file")),
    Case("scores-profile-a-string", E, lambda c: scores_with(c, lambda doc: doc.update(profile="runtime")),
         ("scores.json", "scores file is incomplete")),
    Case("scores-profile-name-a-list", E, lambda c: scores_with(c, lambda doc: doc["profile"].update(name=["runtime"])),
         ("scores.json", "scores file is incomplete")),
    Case("scores-sums-not-finite", E,
         lambda c: (lambda args: ((c.tmp / "scores.json").write_text((c.tmp / "scores.json").read_text().replace('"sums": [', '"sums": [NaN, ', 1).replace("NaN, 1", "NaN", 0)), args)[-1])(
             scores_with(c, lambda doc: doc["entries"][0].update(sums=[0.5, 0.5]))),
         ("scores.json", "scores entry 0 is malformed")),  # compare.json held bare NaN (not JSON) and p 0.0005 for a NaN delta
    Case("run-predictions-truncated-without-hash", E, lambda c: edited_run(c, truncated_predictions),
         ("base/predictions.jsonl", "predictions.jsonl holds 1 row and run.json counts 3 (truncated or edited?)")),
    Case("run-predictions-not-a-regular-file", E, lambda c: edited_run(c, symlinked_predictions_to_dev_zero),
         ("base/predictions.jsonl", "not a regular file (a device)")),
    Case("diagnose-out-is-the-runs-run-json", E,
         lambda c: [a for a in edited_run(c, lambda d: None) if a != "--no-html"] + ["--out", str(c.tmp / "base" / "run.json")],
         ("base/run.json: --out would overwrite an input of this command; write elsewhere",)),
    Case("eval-out-is-the-golden-sets-root", E,
         lambda c: (lambda g: replace_arg(c.eval(g / "test"), "--out", g) + ["--force"])(
             (lambda g: (os.rename(g / "g.jsonl", (g / "test").mkdir() or g / "test" / "g.jsonl"), g)[-1])(c.golden(good_lines(), name="set"))),
         ("/set: --out would overwrite an input of this command",)),  # its *.jsonl are golden files of the set too
    Case("thresholds-a-fifo", E, lambda c: (lambda args: ((c.tmp / "th.toml").unlink(), os.mkfifo(c.tmp / "th.toml"), args)[-1])(thresholds(c, "")),
         ("th.toml: not a regular file (a FIFO)",)),
    Case("diagnose-run-is-a-run-json", E, lambda c: ["diagnose", "--run", str(c.runs()[0] / "run.json"), "--no-html"],
         ("base/run.json: not a run directory: give its directory, ",)),
    Case("export-scores-out-is-the-runs-run-json", E,
         lambda c: ["export-scores", "--run", str(c.runs()[0]), "--out", str(c.tmp / "base" / "run.json"), "--force"],
         ("base/run.json: --out would overwrite an input of this command",)),
    Case("eval-out-is-the-golden-set", E, lambda c: replace_arg(c.eval(), "--out", c.tmp / "g") + ["--force"],
         ("/g: --out would overwrite an input of this command",)),
    Case("thresholds-resamples-too-many", E, lambda c: thresholds(c, "[defaults]\nresamples = 30000000\n"),
         ("th.toml", "resamples must be from 1000 to 1000000, not 30000000")),
    Case("golden-raw-too-long", E, lambda c: c.eval(c.golden([line(GOOD), line({"raw": "x" * 100_001, "components": {}})])),
         ("/g/g.jsonl:2", "`raw` is 100001 characters; a postal address is at most 100000")),
    Case("golden-row-deep-with-a-lone-surrogate", E,
         lambda c: c.eval(c.golden([line(GOOD), '{"raw": "12 Main St", "components": {}, "x": ' + "[" * 600 + '"\\ud800"' + "]" * 600 + "}"])),
         ("/g/g.jsonl:2", "unpaired UTF-16 surrogate")),
    Case("golden-manifest-entries-a-bool", W, lambda c: c.eval(manifest(c, entry={"entries": True})),
         ("golden set does not match its manifest", "g.jsonl: the manifest's row count True is not an integer"), check=check_manifest_mismatch),
    Case("out-symlink-to-an-earlier-run", A,
         lambda c: (invoke(replace_arg(c.eval(c.golden([line(GOOD)], name="g1")), "--out", c.tmp / "real")),
                    (c.tmp / "latest").symlink_to("real"), replace_arg(c.eval(), "--out", c.tmp / "latest"))[-1],
         check=check_out_link_kept),
    Case("golden-component-key-with-a-newline", W,
         lambda c: c.eval(c.golden([line({**GOOD, "components": {**GOOD["components"], "floor\nspoofed line": "12"}})])),
         ("gold tags outside the checkpoint's label set are not scored: floor spoofed line (1)",), check=check_one_line_warnings),
    Case("golden-name-too-long", E, lambda c: c.eval(c.tmp / ("g" * 300)), ("file name too long",)),
    Case("golden-file-name-not-utf8", E,
         lambda c: (lambda g: (os.rename(g / "g.jsonl", os.path.join(os.fsencode(g), b"us\xff.jsonl")), c.eval(g))[-1])(c.golden(good_lines())),
         ("a file or directory name is not valid UTF-8", "rename it")),
    # ---- usage errors (click's, as one line) ------------------------------------------------
    Case("usage-unknown-option", E, lambda c: ["eval", "--foo"],
         ("mweval: error: mweval eval: No such option '--foo'", "Did you mean", "Try 'mweval eval --help'.")),
    Case("usage-missing-option", E, lambda c: ["gate", "--candidate", "x"],
         ("mweval: error: mweval gate: Missing option '--baseline'. Try 'mweval gate --help'.",)),
    Case("usage-option-without-value", E, lambda c: ["eval", "--ckpt"],
         ("mweval: error: mweval eval: Option '--ckpt' requires an argument.",)),
    Case("usage-bad-choice", E, lambda c: ["eval", "--ckpt", "x", "--golden", "y", "--profile", "nope"],
         ("mweval: error: mweval eval: Invalid value for '--profile': 'nope' is not one of 'runtime', 'upstream-eval'.",)),
    Case("usage-missing-argument", E, lambda c: ["compare", "a"],
         ("mweval: error: mweval compare: Missing argument 'CAND'.",)),
    Case("usage-unknown-command", E, lambda c: ["evl"],
         ("mweval: error: mweval: No such command 'evl'. Did you mean 'eval'? Try 'mweval --help'.",)),
    Case("usage-unknown-subcommand", E, lambda c: ["golden", "verfy"],
         ("mweval: error: mweval golden: No such command 'verfy'.",)),
]


def test_matrix_has_at_least_40_cases_and_each_is_documented():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert undocumented([c.id for c in CASES]) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, monkeypatch):
    need_shared()
    monkeypatch.chdir(tmp_path)
    ctx = Ctx(tmp_path, monkeypatch)
    args = case.setup(ctx)
    before = snapshot(tmp_path)
    r = invoke(args, case.subprocess)
    assert "Traceback" not in r.stderr + r.stdout
    if case.kind == "error":
        assert_one_line_error(r, case.expect, tmp_path, before)
        return
    assert r.exit_code == case.exit_code, r.stderr
    warnings = [s for s in r.stderr.splitlines() if s.startswith("warning:")]
    if case.kind == "warn":
        assert warnings, r.stderr
        for frag in case.expect:
            assert any(frag in w for w in warnings), (frag, warnings)
    else:
        assert not warnings, warnings
    assert "error" not in r.stderr
    if case.check is not None:
        case.check(ctx, r)


# ---------------------------------------------------------------------------------------------
# interrupted writes that are not a clean error


def test_interrupt_during_rename_keeps_the_previous_run_and_no_temp_file(tmp_path, monkeypatch):
    """Ctrl-C after the temp file is written: exit 130 with one line; the old run is untouched."""
    need_shared()
    monkeypatch.chdir(tmp_path)
    c = Ctx(tmp_path, monkeypatch)
    previous_run(c)
    args = c.eval()
    before = snapshot(tmp_path)
    fail_replace_of("predictions.jsonl", KeyboardInterrupt())(c)
    r = invoke(args)
    assert r.exit_code == 130 and r.stderr.splitlines()[-1] == "mweval: interrupted; unfinished outputs were not written"
    assert snapshot(tmp_path) == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_write_failing_between_the_two_run_files_leaves_the_previous_run_whole(tmp_path, monkeypatch):
    """predictions.jsonl written, run.json not: both are written into a staging directory that is
    moved into place only when complete, so the previous run stays whole (it used to keep its old
    run.json beside the new predictions.jsonl, a pair only predictions_sha256 caught on read)."""
    need_shared()
    monkeypatch.chdir(tmp_path)
    c = Ctx(tmp_path, monkeypatch)
    previous_run(c)
    args = c.eval()
    before = snapshot(tmp_path)
    fail_replace_of("run.json", ENOSPC)(c)
    r = invoke(args)
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1 and "out/run.json: cannot write" in r.stderr
    assert ".partial-" not in r.stderr  # the file asked for, not the staging directory
    assert snapshot(tmp_path) == before
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.glob(".*partial*"))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    r = invoke(["diagnose", "--run", str(c.out), "--no-html"])
    assert r.exit_code == 0, r.stderr


def test_refusal_comes_before_the_evaluation(tmp_path, monkeypatch):
    """A non-empty foreign --out is refused before any model is loaded (not after minutes of work)."""
    need_shared()
    monkeypatch.chdir(tmp_path)
    c = Ctx(tmp_path, monkeypatch)
    c.out.mkdir()
    (c.out / "notes.txt").write_text("mine")
    import mailwoman_eval.evaluate as ev

    def no_load(*a, **k):
        raise AssertionError("the backend was loaded before the output directory was checked")

    monkeypatch.setattr(ev, "load_backend", no_load)
    r = invoke(c.eval())
    assert r.exit_code == 2 and "refusing to write" in r.stderr


def test_diagnose_out_over_a_file_the_run_was_made_from_is_refused(tmp_path, monkeypatch):
    """`diagnose --ckpt … --golden G --out G/g.jsonl` replaced the golden file with the report (and
    `--out CKPT/config.json` the checkpoint's config), exit 0, no --force needed."""
    need_shared()
    monkeypatch.chdir(tmp_path)
    c = Ctx(tmp_path, monkeypatch)
    g = c.golden(good_lines())
    ck = c.ckpt_copy()
    before = {p: p.read_bytes() for p in (g / "g.jsonl", ck / "config.json")}
    for out in before:
        args = [a for a in c.eval(g, ckpt=ck) if a not in ("--no-cache",)]
        args = ["diagnose", *[a for i, a in enumerate(args[1:]) if args[i] != "--out" and a != "--out"]] + ["--out", str(out)]
        r = invoke(args)
        assert r.exit_code == 2 and r.stderr.strip().endswith(f"{out}: --out would overwrite an input of this command; write elsewhere"), r.stderr
    assert {p: p.read_bytes() for p in before} == before
