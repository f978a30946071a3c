"""`--ckpt NAME|PATH` and tokenizer lookup (design.md Decisions, "Names" and "Tokenizer")."""

from __future__ import annotations

import difflib
import glob
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import refuse_special_file
from mailwoman_eval.golden import REPO_ROOT

BUNDLED_RUNS = REPO_ROOT / "demo" / "runs"


@dataclass(frozen=True)
class CheckpointRef:
    spec: str  # what the user typed
    name: str  # display name: run/step, package dir name or onnx file
    path: Path  # a step dir, a weights package dir, or an .onnx file
    kind: str  # "pytorch" | "onnx" | "package"
    found_in: str  # "path" or the search level

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path.is_file() else self.path

    @property
    def onnx_file(self) -> Path | None:
        if self.kind == "onnx":
            return self.path
        if self.kind == "package":
            return self.path / "model.onnx"
        return None


def classify(path: Path) -> str:
    if not path.is_dir():
        refuse_special_file(path)  # a FIFO or /dev/zero given as the model file
    if path.is_file():
        if path.suffix == ".onnx":
            return "onnx"
        raise MwevalError("not a checkpoint: a file that is not .onnx", where=str(path))
    if (path / "pytorch_model.bin").exists() or (path / "config.json").exists():
        return "pytorch"
    if (path / "model.onnx").exists():
        return "package"
    steps = sorted(p.name for p in path.glob("step-*") if (p / "config.json").is_file())
    if steps:  # `--ckpt regressed`: a training run, not one of its checkpoints
        raise MwevalError(f"not a checkpoint: a training run with {len(steps)} steps ({steps[0]} … {steps[-1]}); name one, "
                          f"e.g. {path.name}/{steps[-1]}, or evaluate them all with mweval sweep", where=str(path))
    raise MwevalError("not a checkpoint: no pytorch_model.bin, config.json or model.onnx", where=str(path))


def display_name(path: Path) -> str:
    """RUN/STEP for a step directory; for an ONNX file, its directory too (every export is named
    model.onnx or model.int8.onnx: two of them would share one runs/ directory and one label), and
    the run above it for upstream's RUN/onnx/ layout; else the directory's name."""
    path = path.resolve()
    if path.name.startswith("step-"):
        return f"{path.parent.name}/{path.name}"
    if path.is_file():
        parent = path.parent
        where = f"{parent.parent.name}/{parent.name}" if parent.name == "onnx" and parent.parent.name else parent.name
        return f"{where}/{path.name}" if where else path.name
    return path.name


BUNDLED_LEVEL = "bundled demo runs"


def ckpt_search_levels(cli_roots: tuple[str, ...] = ()) -> list[tuple[str, list[Path]]]:
    env = [Path(p) for p in os.environ.get("MWEVAL_CKPT_PATH", "").split(os.pathsep) if p]
    return [("--ckpt-root", [Path(r) for r in cli_roots]), ("MWEVAL_CKPT_PATH", env), (BUNDLED_LEVEL, [BUNDLED_RUNS])]


def refuse_missing_cli_roots(cli_roots: tuple[str, ...]) -> None:
    """A --ckpt-root that is not a directory is refused whenever a name is looked up: a typo there
    let a name like step-002200 fall through to the bundled demo checkpoint of that name."""
    for root in cli_roots:
        if not Path(root).is_dir():
            raise MwevalError("--ckpt-root is not a directory", where=root)


def refuse_missing_env_roots(spec: str, found_in: str | None, what: str = "checkpoint") -> None:
    """A MWEVAL_CKPT_PATH entry that is not a directory could have held `spec`: refused when the
    name was found only in the bundled demo runs (scored without a word before) or nowhere."""
    if found_in not in (None, BUNDLED_LEVEL):
        return
    missing = [str(r) for level, roots in ckpt_search_levels() if level == "MWEVAL_CKPT_PATH" for r in roots if not r.is_dir()]
    if missing:
        elsewhere = f"elsewhere it is only the bundled demo {what} of that name" if found_in else "it is found nowhere else"
        raise MwevalError(f"MWEVAL_CKPT_PATH names {', '.join(missing)}, not {'a directory' if len(missing) == 1 else 'directories'}: "
                          f"{what} {spec!r} could be there; {elsewhere} (fix MWEVAL_CKPT_PATH, or give a path)")


def resolve_checkpoint(spec: str, cli_roots: tuple[str, ...] = ()) -> CheckpointRef:
    p = Path(spec).expanduser()
    if p.exists():
        return CheckpointRef(spec, display_name(p), p, classify(p), "path")
    if spec.startswith(("/", "./", "../", "~")):
        raise MwevalError("checkpoint path does not exist", where=spec)
    refuse_missing_cli_roots(cli_roots)
    for level, roots in ckpt_search_levels(cli_roots):
        hits: list[Path] = []
        for root in roots:
            if not root.is_dir():
                continue
            hits += [c for c in [root / spec] if c.exists()]
            hits += sorted(c for c in root.glob(f"*/{glob.escape(spec)}") if c.exists())  # a name, not a pattern
        hits = sorted({h.resolve() for h in hits})
        if len(hits) > 1:
            listing = ", ".join(display_name(h) for h in hits)
            raise MwevalError(f"checkpoint name {spec!r} is ambiguous in {level}: {listing} (name one as RUN/STEP)")
        if hits:
            refuse_missing_env_roots(spec, level)
            return CheckpointRef(spec, display_name(hits[0]), hits[0], classify(hits[0]), level)
    refuse_missing_env_roots(spec, None)
    searched = [f"{level} ({', '.join(map(str, roots))})" for level, roots in ckpt_search_levels(cli_roots) if roots]
    known = known_checkpoint_names(cli_roots)
    close = list(dict.fromkeys(n for m in difflib.get_close_matches(spec, known, n=3, cutoff=0.6) for n in known[m]))[:4]
    raise MwevalError(
        f"checkpoint {spec!r} not found (not a path; searched {'; '.join(searched)})"
        + (f"; did you mean {', '.join(close)}?" if close else "")
    )


def known_checkpoint_names(cli_roots: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """For suggestions: each name a user might mean (STEP or RUN/STEP) -> the names to offer, ones
    resolve_checkpoint resolves: a bare STEP that two runs of its search level hold is ambiguous
    there, so its RUN/STEP names are offered instead."""
    out: dict[str, list[str]] = {}
    for _level, roots in ckpt_search_levels(cli_roots):
        bare: dict[str, set[str]] = {}
        for root in roots:
            if not root.is_dir():
                continue
            for c in [*root.iterdir(), *root.glob("*/*")]:
                if (c.is_dir() and (c / "config.json").is_file()) or c.suffix == ".onnx":
                    rel = c.relative_to(root)
                    out.setdefault(str(rel), [str(rel)])
                    bare.setdefault(rel.name, set()).add(str(rel))
        for name, rels in bare.items():
            out.setdefault(name, [name] if len(rels) == 1 else sorted(rels))
    return out


def find_tokenizer(ref: CheckpointRef, explicit: str | None) -> tuple[Path, str]:
    """--tokenizer; tokenizer.model in the checkpoint dir, then its parent (run) dir; then
    training_state.json config.data.tokenizer_dir (+/tokenizer.model, relative to the run dir)."""
    if explicit:
        p = Path(explicit)
        refuse_special_file(p)
        if not p.is_file():
            raise MwevalError("tokenizer file not found", where=explicit)
        return p, "--tokenizer"
    tried: list[str] = []
    d = ref.directory
    for cand, why in ((d / "tokenizer.model", "checkpoint dir"), (d.parent / "tokenizer.model", "run dir")):
        refuse_special_file(cand)  # refused, not skipped for the next candidate
        if cand.is_file():
            return cand, why
        tried.append(str(cand))
    state = d / "training_state.json"
    if state.is_file():
        try:
            tdir = json.loads(state.read_text(encoding="utf-8"))["config"]["data"]["tokenizer_dir"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            tdir = None
        if isinstance(tdir, str) and tdir:
            cand = Path(tdir)
            if not cand.is_absolute():
                cand = d.parent / cand
            cand = cand / "tokenizer.model"
            refuse_special_file(cand)
            if cand.is_file():
                return cand, "training_state.json tokenizer_dir"
            tried.append(f"{cand} (training_state.json)")
    raise MwevalError(f"no tokenizer found for {ref.name}; tried {', '.join(tried)}; pass --tokenizer")


def load_backend(
    ref: CheckpointRef,
    *,
    labels: str | None = None,
    pad_to: str = "auto",
    engine: str = "onnx",
    threads: int | None = None,
    workers: int | None = None,
):
    if ref.kind == "pytorch":  # --labels and --pad-to are the ONNX side's (refuse_inapplicable_knobs)
        from mailwoman_eval.checkpoints.pytorch_dir import PytorchBackend

        return PytorchBackend(ref.path, engine=engine, threads=threads)
    from mailwoman_eval.checkpoints.onnx_backend import OnnxBackend

    return OnnxBackend(ref.onnx_file, labels_arg=labels, pad_to=pad_to, threads=threads, workers=workers)


def refuse_inapplicable_knobs(refs: list[CheckpointRef], labels: str | None, pad_to: str, engine: str) -> None:
    """An option that applies to none of the checkpoints a command evaluates would be ignored
    without a word: --labels and --pad-to apply to ONNX models, --engine numpy/torch to PyTorch
    checkpoints. A compare of a PyTorch step against its ONNX export takes both, each for its side."""
    kinds = {r.kind for r in refs}
    if not refs:
        return
    if "pytorch" in kinds and engine == "torch" and importlib.util.find_spec("torch") is None:  # before the evaluation, not during it
        from mailwoman_eval.checkpoints.pytorch_dir import TORCH_MISSING

        raise MwevalError(TORCH_MISSING)
    if "pytorch" not in kinds and engine != "onnx":
        raise MwevalError(f"--engine {engine} applies to PyTorch checkpoints; an ONNX model runs in onnxruntime", where=str(refs[0].path))
    if kinds == {"pytorch"} and labels:
        raise MwevalError("--labels applies to ONNX models; a PyTorch checkpoint's labels are its config.json's", where=str(refs[0].path))
    if kinds == {"pytorch"} and pad_to != "auto":
        raise MwevalError(f"--pad-to {pad_to} applies to ONNX models; a PyTorch checkpoint runs in length-sorted batches padded within the batch",
                          where=str(refs[0].path))
