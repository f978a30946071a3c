"""`mweval` — a thin click shell over the library. Every MwevalError becomes one line + exit 2."""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import sys
import threading
from pathlib import Path

import click

from mailwoman_eval import __version__
from mailwoman_eval.errors import MwevalError


def fail(msg: str) -> None:
    click.echo(f"mweval: error: {msg}", err=True)
    sys.exit(2)


def guarded(fn):
    """Turn user-caused errors into one stderr line and exit code 2; bugs stay tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MwevalError as e:
            fail(e.one_line)
        except OSError as e:  # pathlib's exists()/is_file() raise it for a name over NAME_MAX, from a typed path
            if e.errno != errno.ENAMETOOLONG:
                raise
            name = os.fsdecode(e.filename or "")
            fail(f"{name[:60]}…: file name too long" if len(name) > 60 else f"{name}: file name too long")
        except UnicodeEncodeError as e:  # a file name that is not UTF-8 (os.fsdecode's surrogates) reaching a JSON or sha256 text
            if "surrogates not allowed" not in str(e):
                raise
            bad = e.object[max(0, e.start - 40) : e.end + 20].encode("utf-8", "backslashreplace").decode()
            fail(f"a file or directory name is not valid UTF-8 (…{one_line(bad)}…); rename it")
        except RuntimeError as e:  # Path.resolve() on a symlink loop (an --out, a golden or checkpoint path)
            if not str(e).startswith("Symlink loop from "):
                raise
            fail(f"{one_line(str(e).removeprefix('Symlink loop from ').strip(chr(39)))}: a symlink loop")
        except Exception as e:  # a Ctrl-C or SIGTERM inside a module's import surfaces as its ImportError
            stop = interruption(e)
            if stop is None:
                raise
            if isinstance(stop, SystemExit):
                raise stop from None  # SIGTERM: _terminated said so, exit 143
            raise KeyboardInterrupt from e

    return wrapper


def interruption(e: BaseException) -> BaseException | None:
    """The KeyboardInterrupt (Ctrl-C) or SystemExit (SIGTERM, `_terminated`) that caused `e`, if
    one did: sentencepiece's import, interrupted, raises "ImportError: initialization failed" with
    it as its cause, a traceback with exit 1, the gate's "regression" code."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt | SystemExit):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def one_line(text: str) -> str:
    """Notes and warnings are built from input text (a gold component named "x\nmweval: error: …"):
    one line each, as errors are, so none can pose as another line (a note's indent is kept)."""
    return text[: len(text) - len(text.lstrip(" "))] + " ".join(text.split())


def info(msg: str, quiet: bool = False) -> None:
    if not quiet:
        click.echo(one_line(msg), err=True)


class _Bar:
    """A progress bar on a terminal. Not on a pipe or a CI log: click prints only the bare label
    there, a line that says nothing the progress note did not."""

    def __init__(self, total: int, label: str, quiet: bool):
        show = not quiet and sys.stderr.isatty()
        self.ctx = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) if show else None
        if self.ctx:
            self.ctx.__enter__()

    def update(self, n: int) -> None:
        if self.ctx:
            self.ctx.update(n)

    def finish(self) -> None:
        if self.ctx:
            self.ctx.__exit__(None, None, None)
            self.ctx = None


_HELP_ONLY = tuple(getattr(click.exceptions, n) for n in ("NoArgsIsHelpError",) if hasattr(click.exceptions, n))  # click >= 8.2: a bare `mweval` prints help


class _OneLineUsage(click.UsageError):
    """A usage error (unknown option, missing argument, bad choice, unknown command) as the one
    stderr line every other error is, instead of click's usage block; exit code 2 as before."""

    def __init__(self, original: click.UsageError, where: str):
        super().__init__(original.format_message(), original.ctx)  # the subclass's message: "Missing option '--ckpt'."
        self.where = original.ctx.command_path if original.ctx else where  # click leaves ctx unset on some parse errors

    def show(self, file=None) -> None:
        click.echo(f"mweval: error: {self.where}: {' '.join(self.message.split())} Try '{self.where} --help'.", err=True)


def _one_line(e: click.UsageError, where: str) -> click.UsageError:
    return e if isinstance(e, (_OneLineUsage, *_HELP_ONLY)) else _OneLineUsage(e, where)


class _OneLineUsageMixin:
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            raise _one_line(e, f"{parent.command_path} {info_name}" if parent else str(info_name)) from None


class _Command(_OneLineUsageMixin, click.Command):
    pass


class _Main(_OneLineUsageMixin, click.Group):
    command_class = _Command
    group_class = type  # `golden` is a _Main too

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # an unknown command; a parameter a command's body rejects
            raise _one_line(e, ctx.command_path) from None
        except (KeyboardInterrupt, click.Abort):
            # click's own handling exits 1, the gate's "regression" code; 130 is what a shell reports
            _stopped("interrupted")
            sys.exit(130)


def _stopped(how: str) -> None:
    click.echo(f"\nmweval: {how}; unfinished outputs were not written", err=True)  # "\n" ends the terminal's ^C


class _ClosedPipeTolerant:
    """stdout whose reader may go away first (`mweval gate … | head -1`, `| true`): what is left to
    print goes to /dev/null and the command ends with its own exit code. click's handling of the
    broken pipe exits 1, the gate's "regression" code, even for a gate that passed."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        try:  # what the stream still buffers is flushed there too, at exit, without a second error
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # not a file descriptor (a test runner's buffer): nothing more is written to it anyway

    def __getattr__(self, name):
        return getattr(self._stream, name)


@click.group(name="mweval", cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mweval")
def main() -> None:
    """Evaluate and diagnose Mailwoman address-parser checkpoints."""
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so staging directories are removed and
    # no half-written output stays behind; Python's default ends the process on the spot.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    for stream in (sys.stdout, sys.stderr):  # a "—" on a latin-1 terminal: escaped, not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if not isinstance(sys.stdout, _ClosedPipeTolerant):
        sys.stdout = _ClosedPipeTolerant(sys.stdout)


def _terminated(signum, frame) -> None:
    _stopped("terminated")
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# shared option sets

def options(*opts):
    """Apply a list of click options in the order given."""

    def apply(fn):
        for o in reversed(opts):
            fn = o(fn)
        return fn

    return apply


# How a checkpoint is evaluated: shared by every command that can run eval first.
EVAL_KNOBS = (
    click.option("--profile", default="runtime", show_default=True, type=click.Choice(["runtime", "upstream-eval"]),
                 help="Decoding/scoring profile: runtime (the shipped decoder) or upstream-eval (eval.py exactly)."),
    click.option("--tokenizer", default=None,
                 help="SentencePiece model (default: tokenizer.model in the checkpoint or run dir, else training_state.json's tokenizer_dir)."),
    click.option("--labels", default=None, help="Label list for ONNX models without a model card (file or comma list)."),
    click.option("--pad-to", "pad_to", default="auto", type=click.Choice(["auto", "128", "own"]), show_default=True,
                 help="ONNX feeding: auto = 128 for int8 graphs (what ships), within-batch otherwise."),
    click.option("--engine", default="onnx", type=click.Choice(["onnx", "numpy", "torch"]), show_default=True,
                 help="Engine for PyTorch checkpoints: onnx (graph built from the weights; fastest) and numpy need no torch."),
    click.option("--ckpt-root", "ckpt_roots", multiple=True, help="Root to look up checkpoint names in, before MWEVAL_CKPT_PATH (repeatable)."),
    click.option("--no-cache", is_flag=True, help="Do not reuse or store cached runs."),
    click.option("--quiet", "-q", is_flag=True, help="No progress bar or notes on stderr."),
)


def refuse_eval_knobs(runs) -> None:
    """Evaluation options given on the command line when nothing is evaluated (every input is a
    saved run) would be ignored without a word; a run is re-scored only by evaluating again.
    A --profile equal to what the runs were scored with is accepted."""
    ctx = click.get_current_context()
    for name, opt in (("profile", "--profile"), ("tokenizer", "--tokenizer"), ("labels", "--labels"),
                      ("pad_to", "--pad-to"), ("engine", "--engine"), ("ckpt_roots", "--ckpt-root"), ("no_cache", "--no-cache")):
        if ctx.get_parameter_source(name) in (None, click.core.ParameterSource.DEFAULT):
            continue
        value = ctx.params[name]
        if name == "profile":
            other = [r for r in runs if r.profile.name != value]
            if not other:
                continue
            raise MwevalError(
                f"--profile {value}, but {other[0].path} was scored with profile {other[0].profile.name}; "
                "a saved run is not re-scored (evaluate its checkpoint with --ckpt to change the profile)"
            )
        raise MwevalError(f"{opt} applies only when a checkpoint is evaluated, and every input here is a saved run")


ckpt_options = options(
    click.option("--ckpt", required=True, help="Checkpoint: step dir, ONNX file, weights package, or a name like step-002200."),
    click.option("--golden", required=True, help="Golden set: a name (v0.1.2, v0.1.2/test, demo-v1) or a directory."),
    *EVAL_KNOBS,
)


# diagnose, compare and gate evaluate a --ckpt into runs/… and have no --force for that directory
NO_FORCE_HINT = "move it away, or run `mweval eval --out DIR` and pass that run"


def run_eval(ckpt, golden, profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache, quiet, out=None, force=False, said=None,
             force_hint="use --force", knobs_checked=False, loaded=None):
    """Resolve names, evaluate (or reuse the cache) and return (Run, out dir). The notes evaluate
    printed on stderr while it ran (e.g. a backend's warning) are added to the set `said`.
    `knobs_checked`: the caller refused options that apply to none of its checkpoints; `loaded`:
    the golden set `golden` names, if the caller has read it already (compare and gate check it first)."""
    from mailwoman_eval.checkpoints.resolve import (
        BUNDLED_LEVEL,
        refuse_inapplicable_knobs,
        resolve_checkpoint,
    )
    from mailwoman_eval.evaluate import EvalOptions, evaluate
    from mailwoman_eval.golden import load_golden, resolve_golden
    from mailwoman_eval.profiles import get_profile
    from mailwoman_eval.run import CACHE_WARNING

    ref = resolve_checkpoint(ckpt, tuple(ckpt_roots))
    if not knobs_checked:
        refuse_inapplicable_knobs([ref], labels, pad_to, engine)
    gpath, gname = resolve_golden(golden)

    def golden_set():  # evaluate() calls it while the model and tokenizer load in threads
        gset = loaded if loaded is not None else load_golden(gpath, gname)
        where = ", bundled demo" if ref.found_in == BUNDLED_LEVEL else ""
        info(f"mweval: {ref.name} ({ref.kind}{where}) on {gname} ({len(gset.entries)} rows), profile {profile}", quiet)
        return gset

    if out is None:
        safe = lambda s: s.replace("/", "-").replace("\\", "-")  # noqa: E731
        # what changes the numbers is in the name: --pad-to own and 128 replaced each other's run
        knobs = (f"__pad-{pad_to}" if pad_to != "auto" else "") + (f"__{engine}" if engine != "onnx" else "")
        out = Path("runs") / f"{safe(ref.name)}__{safe(gname)}__{profile}{knobs}"
    opts = EvalOptions(
        profile=get_profile(profile), tokenizer=tokenizer, labels=labels, pad_to=pad_to, engine=engine,
        use_cache=not no_cache, force=force, force_hint=force_hint,
    )

    def log(line: str) -> None:
        # -q: the run's own warnings are said once it is written (eval_cmd), so an error stays one line;
        # the cache's, which comes after the run is written and is in no run.json, is said now
        info(line, quiet and not line.startswith(CACHE_WARNING))
        if said is not None and not quiet:
            said.add(one_line(line))

    run = evaluate(ref, golden_set, opts, Path(out), progress=lambda n, label: _Bar(n, label, quiet), log=log)
    return run, Path(out)


@main.command("eval")
@ckpt_options
@click.option("--out", default=None, type=click.Path(),
              help="Run directory (default runs/<ckpt>__<golden>__<profile>/, plus __pad-128 or __pad-own and __<engine> when given).")
@click.option("--force", is_flag=True, help="Write into a non-empty directory that is not an mweval run.")
@guarded
def eval_cmd(ckpt, golden, profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache, quiet, out, force):
    """Evaluate a checkpoint on a golden set; write run.json + predictions.jsonl."""
    from mailwoman_eval.console import per_tag_table

    said: set[str] = set()
    run, out_dir = run_eval(ckpt, golden, profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache, quiet, out, force, said)
    m = run.meta
    click.echo(f"{m['checkpoint']['name']} on {m['golden']['name']} — profile {m['profile']['name']}, "
               f"transitions {m['decode']['transitions']}, labels from {m['checkpoint']['labels_source']}")
    zero = m["checkpoint"].get("zero_fed_inputs") or []
    if zero:
        click.echo(f"zero_fed_inputs ({len(zero)}): {', '.join(zero)}")
    warn(m["warnings"], said)
    click.echo(per_tag_table(m["metrics"]["views"]["all"], run.tags))
    click.echo(f"run written to {os.path.abspath(out_dir)}/ ({cache_word(run, no_cache)})")


# ---------------------------------------------------------------------------------------------
# diagnose

def cache_word(run, no_cache: bool) -> str:
    """What the run cache did for an evaluated run: hit, miss, or off (--no-cache never looks)."""
    return "cache off" if no_cache else f"cache {run.meta['timings'].get('cache', 'miss')}"


def load_or_eval(run_dir, ckpt, golden, eval_args, quiet, said=None):
    """A run directory, or --ckpt/--golden evaluated first (reusing a cached run when it matches).
    Returns (run, the run directory written, or None for --run)."""
    from mailwoman_eval.run import load_run

    if run_dir and (ckpt or golden):
        raise MwevalError("give either --run or --ckpt/--golden, not both")
    if run_dir:
        run = load_run(run_dir)
        refuse_eval_knobs([run])
        return run, None
    if not (ckpt and golden):
        raise MwevalError("give --run DIR, or both --ckpt and --golden")
    return run_eval(ckpt, golden, *eval_args, quiet=quiet, force_hint=NO_FORCE_HINT, said=said)


def warn(warnings, said: set[str] | None = None) -> None:
    """Warnings go to stderr, one line each, as `eval` prints them (stdout is the command's output);
    not again when they were said while the run loaded."""
    for w in warnings:
        if one_line(f"warning: {w}") not in (said or ()):
            click.echo(one_line(f"warning: {w}"), err=True)


REPORT_MARK = b'<meta name="generator" content="mweval '  # in the head of every report (base.html.j2)


def refuse_foreign_files(report: Path, tables: list[Path], force: bool) -> None:
    """A report replaces an earlier mweval report; any other file only with --force (it was
    replaced without a word, its .errors.csv and .errors.parquet written beside it). The error
    tables are written only beside their report: without one, a file of their name is not ours."""
    if force:
        return
    if report.is_file():
        try:
            with report.open("rb") as f:
                head = f.read(4096)
        except OSError:
            head = b""
        if REPORT_MARK not in head:
            raise MwevalError("exists and is not an mweval report; pass --force to replace it", where=str(report))
        return
    taken = next((t for t in tables if t.exists()), None)
    if taken is not None:
        raise MwevalError(f"exists, and no mweval report {report.name} beside it wrote it; pass --force to replace it", where=str(taken))


optional_ckpt_options = options(
    click.option("--run", "run_dir", default=None, type=click.Path(), help="A run directory written by mweval eval."),
    click.option("--ckpt", default=None, help="Evaluate this checkpoint first (or reuse the cached run)."),
    click.option("--golden", default=None, help="Golden set for --ckpt."),
    *EVAL_KNOBS,
)


@main.command("diagnose")
@optional_ckpt_options
@click.option("--buckets", "scheme", default="default", type=click.Choice(["default", "upstream"]), show_default=True,
              help="Error-category scheme: default (fixed rules) or upstream (diagnose_regression.py exactly).")
@click.option("--adversarial", "adversarial", default="default", type=click.Choice(["default", "non-latin"]), show_default=True,
              help="What counts as adversarial: adversarial.jsonl + kryptonite/graceful notes, optionally + non-Latin rows.")
@click.option("--tags", default=None, help="Comma-separated tags (default: all scored tags).")
@click.option("--examples-per-bucket", "examples", default=3, show_default=True, type=click.IntRange(0),
              help="Examples the console prints per category (the HTML report shows its own spread; the error table has every error).")
@click.option("--seed", default=42, show_default=True, type=int, help="Seed of the console's example sample.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")
@click.option("--out", default=None, type=click.Path(),
              help="HTML report path (default reports/<run>.html; --tags, --buckets upstream and --adversarial non-latin add "
                   "__<tag>+<tag>, __buckets-upstream and __adv-non-latin to the name).")
@click.option("--no-html", is_flag=True, help="Skip the HTML report and the error table.")
@click.option("--force", is_flag=True, help="Replace a report file (--out or the default) that is not an mweval report (a run directory is never forced).")
@guarded
def diagnose_cmd(run_dir, ckpt, golden, profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache, quiet,
                 scheme, adversarial, tags, examples, seed, as_json, out, no_html, force):
    """Per-tag FP/FN error categories in three views (all / excluding / only adversarial) + HTML report."""
    import json as _json

    from mailwoman_eval.diagnose import console, diagnose, error_tables, to_json, upstream_console
    from mailwoman_eval.run import OOD_PREFIX, loudest_first

    def refuse_directory(path: str) -> None:
        if Path(path).is_dir() or path.endswith(("/", os.sep)):
            raise MwevalError("--out is a directory; give the HTML file to write (e.g. reports/run.html)", where=path)

    # options that would be ignored are refused, before any evaluation
    given = [f"--{n}" for n, p in (("examples-per-bucket", "examples"), ("seed", "seed"))
             if click.get_current_context().get_parameter_source(p) is not click.core.ParameterSource.DEFAULT]
    if as_json and given:
        raise MwevalError(f"{' and '.join(given)} choose{'s' if len(given) == 1 else ''} the console's examples; --json prints none")
    if out and no_html:
        raise MwevalError("--out names the HTML report, which --no-html skips")
    if force and no_html:
        raise MwevalError("--force replaces a report file that is not an mweval report, which --no-html does not write")
    if out and not no_html:
        refuse_directory(out)
    said: set[str] = set()
    run, evaluated = load_or_eval(run_dir, ckpt, golden, (profile, tokenizer, labels, pad_to, engine, ckpt_roots, no_cache), quiet, said)
    d = diagnose(run, scheme=scheme, adversarial=adversarial, tags=tags)
    written = []
    if not no_html:
        from mailwoman_eval.fsutil import refuse_overwriting_inputs, write_files
        from mailwoman_eval.report.diagnose_page import render_diagnose_html
        from mailwoman_eval.run import run_inputs

        # a report of some tags, in the upstream scheme or with non-Latin rows as adversarial is named
        # for it: under the run's name it replaced the full default report
        focus = "__" + "+".join(re.sub(r"[^\w-]", "_", t) for t in d.tags) if tags else ""
        focus += ("__buckets-upstream" if scheme == "upstream" else "") + ("__adv-non-latin" if adversarial == "non-latin" else "")
        html_path = Path(out) if out else Path("reports") / f"{run.path.name}{focus}.html"
        if html_path.is_symlink():  # the report it names is updated, its tables beside it (not beside the link)
            html_path = Path(os.path.realpath(html_path))
        refuse_directory(str(html_path))  # the default name may be taken by a directory
        csv_path = html_path.with_name(html_path.stem + ".errors.csv")
        # the report and its error tables land together or not at all (a full disk on the HTML left
        # new tables beside a stale report)
        files = {html_path: render_diagnose_html(d, csv_path.name).encode("utf-8"), **error_tables(d, csv_path)}
        refuse_overwriting_inputs(files, run_inputs(run))  # --force or not
        # after the evaluation (a run evaluated for it is in runs/ and the cache), and after the check
        # of the inputs, which --force does not lift
        refuse_foreign_files(html_path, [p for p in files if p != html_path], force)
        write_files(files)
        written = list(files)
    if as_json:
        doc = to_json(d)
        doc["outputs"] = [str(p) for p in written]
        click.echo(_json.dumps(doc, ensure_ascii=False, indent=2))
        return
    if scheme == "upstream":
        # stdout is upstream's layout alone (it diffs against diagnose_regression.py's), so the notes go to
        # stderr, and -q silences them as it silences stderr for the default scheme; the out-of-distribution
        # warning is said even then (design: never silently)
        info(f"loaded {len(run.predictions)} golden entries", quiet)
        warn([w for w in loudest_first(d.warnings) if not quiet or w.startswith(OOD_PREFIX)], said)
        click.echo(upstream_console(d, examples, seed), nl=False)
    else:
        warn(loudest_first(d.warnings), said)
        click.echo(console(d, examples, seed), nl=False)
    if not (quiet and scheme == "upstream"):
        # absolute: the default reports/ is relative to where mweval ran, which is not always where the user is
        if evaluated is not None:  # compare, gate and export-scores take it
            click.echo(f"run: {evaluated.resolve()} ({cache_word(run, no_cache)})", err=scheme == "upstream")
        if written:
            click.echo(f"report: {written[0].resolve()}", err=scheme == "upstream")
            click.echo("error table: " + ", ".join(str(p.resolve()) for p in written[1:]), err=scheme == "upstream")


# ---------------------------------------------------------------------------------------------
# golden sets

@main.group()
def golden() -> None:
    """List, verify, validate and fetch golden sets."""


@golden.command("list")
@guarded
def golden_list():
    """Golden sets found under MWEVAL_GOLDEN_PATH, ./data/eval/golden, the user data dir and bundled golden/."""
    from mailwoman_eval.console import table
    from mailwoman_eval.golden import available_golden, load_golden

    rows, errors = [], []
    for name, path, level in available_golden():
        try:
            g = load_golden(path, name)
            rows.append([name, len(g.entries), len(g.files), g.manifest.status, level, str(path)])
        except MwevalError as e:
            rows.append([name, "", "", "unreadable", level, str(path)])
            errors.append(f"{name}: {e.one_line}")  # whole, below the table: a cut cell lost the file:line and the reason
    if not rows:
        click.echo("no golden sets found")
        return
    click.echo(table(["name", "rows", "files", "manifest", "found in", "path"], rows, align="lrrlll"))
    for line in errors:
        click.echo(f"error: {line}", err=True)


@golden.command("verify")
@click.argument("name")
@click.option("--strict", is_flag=True, help="Exit 2 on a manifest mismatch (default: warn, exit 0).")
@guarded
def golden_verify(name, strict):
    """Check a set's files against MANIFEST.json (or SPLIT-MANIFEST.json for dev/test)."""
    from mailwoman_eval.golden import load_golden, resolve_golden

    path, gname = resolve_golden(name)
    g = load_golden(path, gname)
    m = g.manifest
    if m.status == "mismatch":
        msg = f"{gname}: manifest mismatch ({len(m.problems)} problems, {m.manifest})"
        if strict:  # the error is the one stderr line (nothing on stdout), so it carries the problems itself
            raise MwevalError(f"{msg}: " + "; ".join(m.problems))
    for f in g.files:
        click.echo(f"{f.name}  {f.entries} rows  sha256 {f.sha256}")
    if g.duplicates:  # scored as often as they appear, as upstream does; said here, not only in run.json
        click.echo(f"{gname}: {g.duplicates} rows repeat an earlier row (same raw and components)")
    if m.status == "absent":
        click.echo(f"{gname}: no manifest to verify against")
    elif m.status == "ok":
        click.echo(f"{gname}: manifest OK ({m.manifest})")
    else:
        for p in m.problems:
            click.echo(f"warning: {p}", err=True)
        click.echo(msg)


@golden.command("pull")
@click.argument("name")
@click.option("--from", "source", default=None, help="Base URL, or a local directory: an upstream checkout (<base>/data/eval/golden/<version>/<file>) or one holding <version>/<file> or golden/<version>/<file>.")
@guarded
def golden_pull(name, source):
    """Fetch a pinned upstream golden version, verify sha256s, install it in the user data dir."""
    from mailwoman_eval.golden_pull import pull

    dest = pull(name, source, log=lambda s: click.echo(f"  {s}", err=True))
    click.echo(f"{name} installed at {dest} (use --golden {name})")


@golden.command("validate")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Values listed (0: all); the counts cover every one.")
@click.option("--ignore-case", is_flag=True,
              help="Exit 1 only for values not in raw in any letter case (the runtime profile matches case-folded; "
                   "upstream v0.1.2 has 2663 values in raw only in another case).")
@guarded
def golden_validate(name, limit, ignore_case):
    """Check every component value is a substring of raw; exit 1 when one is not.

    Values found only in another letter case are counted apart: the upstream-eval profile can never
    match them, the runtime profile (case-folded) can (--ignore-case: they do not fail the check)."""
    from collections import Counter

    from mailwoman_eval.golden import load_golden, resolve_golden, substring_problems

    path, gname = resolve_golden(name)
    g = load_golden(path, gname)
    problems = substring_problems(g)
    shown = problems if limit == 0 else problems[:limit]
    for p in shown:
        kind = "is in raw only in another case" if p["case_only"] else "is not in raw"
        click.echo(f"{p['id']}: {p['tag']} {p['value']!r} {kind}: {p['raw']!r}")
    if len(shown) < len(problems):
        click.echo(f"… {len(problems) - len(shown)} more (--limit 0 lists all)")
    case_only = sum(p["case_only"] for p in problems)
    click.echo(f"{gname}: {len(g.entries)} rows, {len(problems)} component values not found in raw "
               f"({case_only} only in another case, {len(problems) - case_only} not at all)")
    if problems:
        by_tag = Counter(p["tag"] for p in problems)
        click.echo("by tag: " + ", ".join(f"{t} {n}" for t, n in by_tag.most_common()))
    failing = len(problems) - case_only if ignore_case else len(problems)
    sys.exit(1 if failing else 0)


from mailwoman_eval import cli_compare, cli_runs  # noqa: E402,F401  (register compare, gate, export-scores, sweep, parity)

if __name__ == "__main__":  # pragma: no cover
    main()
