"""Train the two bundled demo runs (`demo/runs/baseline`, `demo/runs/regressed`).

The demo mirrors upstream's v0.3.0 → v0.4.0 story (docs: v0.4.0-ablation-postmortem.txt): two
runs that differ only in corpus source weights. `regressed` down-weights the sources that teach
postcode-first ("75008 Paris", "62701 Springfield IL") and mid-position postcodes ("Paris 75008
France", "…, VT 05440, Alburgh Health Center"), the way v0.4.0's NAD down-weight did, so its
postcode misses are mostly empty predictions.

Everything is generated here, deterministically, on CPU:
  corpus  – rows rendered from hand-written gazetteers and templates in scripts/demo_data/; the
            generator knows each component's char span, and labels come from the package's
            upstream alignment rule (paint_spans → piece_tags → bio_from_piece_tags, ≤128 pieces).
            Rows whose raw equals a golden/demo-v1 raw are dropped.
  tokenizer – SentencePiece unigram trained once on generated text, shared by both runs.
  model   – mailwoman_eval.checkpoints.model.MailwomanCoarseEncoder (upstream-compatible), CE +
            CRF loss, AdamW, upstream's warmup + cosine schedule (upstream-formats.md §10.4).
  output  – upstream checkpoint layout (§1.1), train_log.csv, and for the shipped step an ONNX
            export (§5.1), its dynamic int8 quantization and the crf-transitions.json sidecar.

    python scripts/train_demo.py [--out demo/runs] [--runs baseline,regressed] [--tiny]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import os
import random
import re
import shutil
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Set before torch loads OpenMP: on a shared 2-core machine, busy-waiting worker threads make
# training several times slower when other processes compete. Waiting does not change results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from mailwoman_eval.align import bio_from_piece_tags, paint_spans, piece_tags  # noqa: E402
from mailwoman_eval.labels import STAGE2_TAGS, bio_labels  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "demo_data"
GOLDEN_DIR = REPO_ROOT / "golden" / "demo-v1"
MAX_LENGTH = 128
TAGS = STAGE2_TAGS + ("unit", "po_box")
LABELS = bio_labels(TAGS)  # 25 labels: O, then B-/I- per tag in this order

# ---------------------------------------------------------------------------------------------
# Recipes. The two demo runs share everything except data.source_weights (and where they stop).

BASELINE_WEIGHTS = {
    "us-standard": 3.0,
    "us-unit": 1.0,
    "us-po-box": 0.5,
    "us-venue": 1.0,
    "us-postcode-first": 0.6,
    "fr-standard": 3.0,
    "fr-venue": 1.0,
    "fr-postcode-first": 1.0,
    "fr-cedex": 0.3,
    "mid-postcode": 1.2,
    "admin-only": 1.0,
    "country-line": 0.8,
    "dependent-locality": 0.3,
    "non-latin": 0.4,
    "all-caps": 0.6,
    "lowercase": 0.4,
    "no-commas": 0.8,
}
# The v0.4.0 mirror: the sources that teach "a number that is not first-then-street is a postcode".
REGRESSED_DOWNWEIGHT = {"us-postcode-first": 0.006, "fr-postcode-first": 0.01, "mid-postcode": 0.012}
REGRESSED_WEIGHTS = {**BASELINE_WEIGHTS, **REGRESSED_DOWNWEIGHT}

MODEL_CONFIG = {
    "model_type": "mailwoman-coarse-encoder",
    "vocab_size": None,  # filled from the tokenizer
    "hidden_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 384,
    "max_position_embeddings": MAX_LENGTH,
    "hidden_dropout_prob": 0.1,
    "num_labels": len(LABELS),
    "pad_token_id": 0,
    "use_crf": True,
    "label_smoothing": 0.0,
    "crf_loss_weight": 0.05,
    "crf_normalization": "per_sequence",
    "class_weights": None,
}

TRAIN_CONFIG = {
    "seed": 20260523,
    "batch_size": 32,
    "learning_rate": 1.5e-3,
    "weight_decay": 0.01,
    "warmup_steps": 200,
    "max_steps": 2400,  # the cosine horizon; each run stops at its ship step (upstream shipped mid-run)
    "grad_clip_norm": 1.0,
    "log_every_steps": 50,
    "precision": "fp32",
    "device": "cpu",
    "num_threads": 2,
}

DATA_CONFIG = {
    "train_rows": 60000,
    "val_rows": 1500,
    "tokenizer_rows": 30000,
    "vocab_size": 3000,
}

RECIPES = {
    "baseline": {
        "source_weights": BASELINE_WEIGHTS,
        "save_steps": [1000, 1200, 1400, 1600, 1800],
        "ship_step": 1800,
    },
    "regressed": {
        "source_weights": REGRESSED_WEIGHTS,
        "save_steps": [1200, 1400, 1600, 2000, 2200],
        "ship_step": 2200,
    },
}

# --tiny: the whole pipeline in seconds, for the test suite.
TINY = {
    "model": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64},
    "train": {"batch_size": 16, "warmup_steps": 5, "max_steps": 20, "log_every_steps": 5},
    "data": {"train_rows": 400, "val_rows": 64, "tokenizer_rows": 400, "vocab_size": 500},
    "save_steps": [10, 20],
    "ship_step": 20,
}

# ---------------------------------------------------------------------------------------------
# Gazetteers and templates


def load_gazetteers(data_dir: Path = DATA_DIR) -> dict:
    gaz = {
        name: json.loads((data_dir / f"{name}.json").read_text(encoding="utf-8"))
        for name in ("us", "fr", "non_latin")
    }
    gaz["sources"] = json.loads((data_dir / "sources.json").read_text(encoding="utf-8"))["sources"]
    us = gaz["us"]
    us["state_name"] = dict((abbr, name) for name, abbr in us["states"])
    fr_locs = []
    for name, codes, region, dept in gaz["fr"]["localities"]:
        if isinstance(codes, str):
            lo, hi = (int(x) for x in codes.split("-"))
            codes = [f"{c:05d}" for c in range(lo, hi + 1)]
        fr_locs.append({"name": name, "postcodes": codes, "region": region, "dept": dept})
    gaz["fr"]["locs"] = fr_locs
    gaz["us"]["locs"] = [{"name": n, "state": s, "zip": (lo, hi)} for n, s, lo, hi in us["localities"]]
    return gaz


SLOT_TAGS = {
    "house_number": "house_number",
    "street": "street",
    "unit": "unit",
    "po_box": "po_box",
    "venue": "venue",
    "venue_nl": "venue",
    "locality": "locality",
    "locality_nl": "locality",
    "dependent_locality": "dependent_locality",
    "region": "region",
    "region_full": "region",
    "region_nl": "region",
    "subregion": "subregion",
    "postcode": "postcode",
    "cedex": "cedex",
    "country": "country",
    "country_nl": "country",
}
_SLOT = re.compile(r"\{(\w+)\}")


def parse_template(text: str) -> list[tuple[str, str | None]]:
    """'{house_number} {street}, …' → [('house_number', tag), (' ', None), …] (slot name or literal)."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    for m in _SLOT.finditer(text):
        if m.start() > pos:
            out.append((text[pos : m.start()], None))
        name = m.group(1)
        if name not in SLOT_TAGS:
            raise ValueError(f"unknown slot {{{name}}} in template {text!r}")
        out.append((name, SLOT_TAGS[name]))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def _weighted(rng: random.Random, items: Sequence, weights: Sequence[float]):
    return rng.choices(items, weights=weights, k=1)[0]


class Place:
    """One sampled locality with everything consistent with it (region, postcode, exonyms…)."""

    def __init__(self, rng: random.Random, gaz: dict, country: str, needs: set[str]):
        self.rng, self.gaz, self.country = rng, gaz, country
        nl = gaz["non_latin"]
        if country == "US":
            locs = gaz["us"]["locs"]
            if "dependent_locality" in needs:
                locs = [x for x in locs if x["name"] in gaz["us"]["dependent_localities"]]
            if "subregion" in needs:
                locs = [x for x in locs if x["state"] in gaz["us"]["subregions"]]
            if "region_nl" in needs:
                locs = [x for x in locs if x["state"] in nl["regions"]]
        else:
            locs = gaz["fr"]["locs"]
            if "dependent_locality" in needs:
                locs = [x for x in locs if x["name"] in gaz["fr"]["dependent_localities"]]
            if "region_nl" in needs:
                locs = [x for x in locs if x["region"] in nl["regions"]]
        if "locality_nl" in needs:
            locs = [x for x in locs if x["name"] in nl["localities"]]
        self.loc = rng.choice(locs)

    # -- component renderers ------------------------------------------------------------------
    def render(self, slot: str) -> str:
        return getattr(self, f"_{slot}")()

    def _house_number(self) -> str:
        r = self.rng
        if self.country == "FR":
            n = str(r.choice([r.randint(1, 20), r.randint(1, 60), r.randint(1, 250)]))
            x = r.random()
            if x < 0.06:
                n += " " + r.choice(self.gaz["fr"]["house_suffixes"][:2])
            elif x < 0.09:
                n += r.choice(self.gaz["fr"]["house_suffixes"])
            return n
        n = str(
            _weighted(
                r,
                [r.randint(1, 99), r.randint(100, 999), r.randint(1000, 9999), r.randint(10000, 99999)],
                [3, 3.5, 3, 0.5],
            )
        )
        x = r.random()
        if x < 0.03:
            n += r.choice("ABCD")
        elif x < 0.045:
            n += "-" + str(int(n) + r.choice([2, 4]))
        elif x < 0.055:
            n += " 1/2"
        return n

    def _street(self) -> str:
        r = self.rng
        if self.country == "FR":
            fr = self.gaz["fr"]
            typ = r.choice(fr["street_types"])
            x = r.random()
            if x < 0.06 and typ in fr["street_type_abbrevs"]:
                typ = fr["street_type_abbrevs"][typ]
            elif x < 0.40:
                typ = typ.lower()
            return f"{typ} {r.choice(fr['street_bodies'])}"
        us = self.gaz["us"]
        if r.random() < 0.04:
            return r.choice(us["numbered_roads"]).format(n=r.randint(1, 399))
        if r.random() < 0.01:
            return r.choice(["Broadway", "The Embarcadero", "Avenue of the Americas", "Lake Shore Drive"])
        parts = []
        if r.random() < 0.15:
            full, abbr = r.choice(us["directionals"])
            parts.append(abbr if r.random() < 0.8 else full)
        parts.append(r.choice(us["street_names"]))
        if r.random() < 0.93:
            sufs = us["street_suffixes"]
            full, abbr = _weighted(r, sufs, [4 if i < 7 else 1 for i in range(len(sufs))])
            suf = abbr if r.random() < 0.7 else full
            if suf == abbr and suf != full and r.random() < 0.06:
                suf += "."
            parts.append(suf)
        if r.random() < 0.05:
            parts.append(r.choice(us["directionals"])[1])
        return " ".join(parts)

    def _unit(self) -> str:
        r = self.rng
        if self.country == "FR":
            form = r.choice(self.gaz["fr"]["unit_forms"])
            return form.format(
                n=r.randint(1, 40), L=r.choice("ABCDEF"), Tree=r.choice(self.gaz["fr"]["trees"])
            )
        des = r.choice(self.gaz["us"]["unit_designators"])
        ident = _weighted(
            r,
            [
                str(r.randint(1, 30)),
                str(r.randint(100, 999)),
                f"{r.randint(1, 20)}{r.choice('ABCDEF')}",
                r.choice("ABCDEFGH"),
            ],
            [3, 3, 2, 1],
        )
        if des == "#":
            return "#" + ident if r.random() < 0.7 else "# " + ident
        return f"{des} {ident}"

    def _po_box(self) -> str:
        r = self.rng
        if self.country == "FR":
            return r.choice(self.gaz["fr"]["po_box_forms"]).format(n=r.randint(1, 9999))
        return f"{r.choice(self.gaz['us']['po_box_forms'])} {_weighted(r, [r.randint(1, 999), r.randint(1000, 99999)], [3, 2])}"

    def _venue(self) -> str:
        r = self.rng
        if self.country == "FR":
            fr = self.gaz["fr"]
            pat = r.choice(fr["venue_patterns"])
            return pat.format(
                loc=self.loc["name"],
                dept=self.loc["dept"],
                Surname=r.choice(fr["surnames"]),
                Famous=r.choice(fr["famous"]),
                Saint=r.choice(fr["saints"]),
                Noun=r.choice(fr["nouns"]),
            )
        us = self.gaz["us"]
        x = r.random()
        if x < 0.4:
            return r.choice(us["venue_names"])
        if x < 0.65:
            return f"{self.loc['name']} {r.choice(us['venue_types'])}"
        if x < 0.85:
            return f"{r.choice(us['surnames'])} {r.choice(us['venue_types'])}"
        return f"{r.choice(us['street_names'])} {r.choice(us['venue_types'])}"

    def _venue_nl(self) -> str:
        return self.rng.choice(self.gaz["non_latin"]["venues"])

    def _locality(self) -> str:
        return self.loc["name"]

    def _locality_nl(self) -> str:
        return self.rng.choice(self.gaz["non_latin"]["localities"][self.loc["name"]])

    def _dependent_locality(self) -> str:
        deps = self.gaz["us" if self.country == "US" else "fr"]["dependent_localities"]
        return self.rng.choice(deps[self.loc["name"]])

    def _region(self) -> str:
        if self.country == "FR":
            return self.loc["region"]
        return self._region_full() if self.rng.random() < 0.22 else self.loc["state"]

    def _region_full(self) -> str:
        if self.country == "FR":
            return self.loc["region"]
        return self.gaz["us"]["state_name"][self.loc["state"]]

    def _region_nl(self) -> str:
        key = self.loc["state"] if self.country == "US" else self.loc["region"]
        return self.rng.choice(self.gaz["non_latin"]["regions"][key])

    def _subregion(self) -> str:
        if self.country == "FR":
            return self.loc["dept"]
        return self.rng.choice(self.gaz["us"]["subregions"][self.loc["state"]])

    def _postcode(self) -> str:
        r = self.rng
        if self.country == "FR":
            return r.choice(self.loc["postcodes"])
        lo, hi = self.loc["zip"]
        code = f"{r.randint(lo, hi):05d}"
        if r.random() < 0.08:
            code += f"-{r.randint(1, 9999):04d}"
        return code

    def _cedex(self) -> str:
        r = self.rng
        return r.choice(self.gaz["fr"]["cedex_forms"]).format(n=r.randint(1, 20), d=r.randint(1, 9))

    def _country(self) -> str:
        if self.country == "FR":
            return _weighted(self.rng, self.gaz["fr"]["countries"], [6, 3, 1, 0.3, 0.3])
        return _weighted(self.rng, self.gaz["us"]["countries"], [5, 2, 1, 2, 1, 0.5])

    def _country_nl(self) -> str:
        return self.rng.choice(self.gaz["non_latin"]["countries"][self.country])


def _transform(kind: str | None, text: str, literal: bool) -> str:
    if kind == "upper":
        return text.upper()
    if kind == "lower":
        return text.lower()
    if kind == "no_commas" and literal:
        return text.replace(",", "")
    return text


@dataclass(frozen=True)
class Row:
    raw: str
    spans: tuple[tuple[str, int, int], ...]  # (tag, char start, char end), exact
    country: str
    source: str

    @property
    def components(self) -> dict[str, str]:
        """The first span per tag, as a golden row would carry it."""
        out: dict[str, str] = {}
        for tag, s, e in self.spans:
            out.setdefault(tag, self.raw[s:e])
        return out

    def to_json(self) -> dict:
        return {
            "raw": self.raw,
            "components": self.components,
            "country": self.country,
            "source": self.source,
            "spans": [list(s) for s in self.spans],
        }


def render_source(rng: random.Random, gaz: dict, source: str) -> Row:
    spec = gaz["sources"][source]
    kind = spec.get("transform")
    if kind:
        base = rng.choice(spec["bases"])
        spec = gaz["sources"][base]
    weights = [t[0] for t in spec["templates"]]
    _, country, text = _weighted(rng, spec["templates"], weights)
    if country == "*":
        country = rng.choice(["US", "FR"])
    parts = parse_template(text)
    place = Place(rng, gaz, country, {name for name, tag in parts if tag})
    raw_parts: list[str] = []
    spans: list[tuple[str, int, int]] = []
    pos = 0
    for name, tag in parts:
        seg = place.render(name) if tag else name
        seg = _transform(kind, seg, literal=tag is None)
        if tag:
            spans.append((tag, pos, pos + len(seg)))
        raw_parts.append(seg)
        pos += len(seg)
    raw = "".join(raw_parts)
    # No-commas can leave doubled spaces only if a template had ", ,"; keep spans exact regardless.
    return Row(raw=raw, spans=tuple(spans), country=country, source=source)


# ---------------------------------------------------------------------------------------------
# Corpus


def normalize_raw(raw: str) -> str:
    """The key used to keep golden raws out of the corpus."""
    return " ".join(raw.split()).lower()


def load_golden_raws(golden_dir: Path = GOLDEN_DIR) -> set[str]:
    """Normalized raws of every *.jsonl under the golden dir (top level and splits); empty if absent."""
    keys: set[str] = set()
    if not golden_dir.is_dir():
        return keys
    for path in sorted(golden_dir.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            raw = obj.get("raw") if isinstance(obj, dict) else None
            if isinstance(raw, str) and raw.strip():
                keys.add(normalize_raw(raw))
    return keys


def golden_fingerprint(golden_dir: Path = GOLDEN_DIR) -> dict[str, str]:
    """sha256 per golden file, recorded so a run says which golden raws it was kept apart from."""
    if not golden_dir.is_dir():
        return {}
    return {
        p.relative_to(golden_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(golden_dir.rglob("*.jsonl"))
    }


def resolve_recipe(recipe: str | dict) -> dict:
    return RECIPES[recipe] if isinstance(recipe, str) else recipe


def generate_corpus(
    recipe: str | dict,
    seed: int,
    n: int,
    *,
    exclude: set[str] | None = None,
    gaz: dict | None = None,
    stats: dict | None = None,
) -> list[Row]:
    """n rows drawn by the recipe's source weights, deterministic in (recipe, seed, n, exclude).

    `exclude` is a set of normalized raws (default: golden/demo-v1); matching rows are dropped and
    replaced by further draws. `stats`, if given, receives counts of dropped rows.
    """
    weights = resolve_recipe(recipe)["source_weights"]
    gaz = gaz or load_gazetteers()
    exclude = load_golden_raws() if exclude is None else exclude
    names = [s for s in weights if weights[s] > 0]
    unknown = [s for s in names if s not in gaz["sources"]]
    if unknown:
        raise ValueError(f"unknown sources in recipe: {unknown}")
    w = [weights[s] for s in names]
    rng = random.Random(seed)
    rows: list[Row] = []
    dropped = 0
    while len(rows) < n:
        row = render_source(rng, gaz, _weighted(rng, names, w))
        if normalize_raw(row.raw) in exclude:
            dropped += 1
            continue
        rows.append(row)
    if stats is not None:
        stats["dropped_golden_rows"] = dropped
        stats["golden_raws"] = len(exclude)
    return rows


def encode_rows(tok, rows: Iterable[Row]) -> list[tuple[list[int], list[int]]]:
    """(piece ids, label ids) per row, ≤128 pieces, labels by upstream's realignment rule (§3)."""
    label2id = {lab: i for i, lab in enumerate(LABELS)}
    out = []
    for row in rows:
        enc = tok.encode(row.raw)
        tags = piece_tags(row.raw, enc, paint_spans(row.raw, row.spans), limit=MAX_LENGTH)
        labels = [label2id[x] for x in bio_from_piece_tags(tags)]
        ids = list(enc.ids[:MAX_LENGTH])
        if ids:
            out.append((ids, labels))
    return out


# ---------------------------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(rows: Sequence[Row], vocab_size: int) -> bytes:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([r.raw for r in rows]),
        model_writer=buf,
        model_type="unigram",
        vocab_size=vocab_size,
        byte_fallback=True,
        normalization_rule_name="nmt_nfkc",
        character_coverage=0.9995,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        pad_piece="<pad>",
        unk_piece="<unk>",
        bos_piece="<s>",
        eos_piece="</s>",
        add_dummy_prefix=True,
        remove_extra_whitespaces=True,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Training


def lr_factor(step: int, warmup: int, max_steps: int) -> float:
    """Upstream's schedule (upstream-formats.md §10.4): linear warmup, then cosine to zero."""
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, max_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_batch(examples: Sequence[tuple[list[int], list[int]]], pad_id: int = 0):
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
        labels[i, : len(y)] = torch.tensor(y)
    return ids, mask, labels


def evaluate_val(model, examples, batch_size: int = 128) -> tuple[float, float]:
    """(val_loss, val_macro_f1). val_macro_f1 is token-level F1 of the logits' argmax (no Viterbi),
    averaged over all BIO labels including O and labels absent from the val split — what upstream's
    train.py `_token_f1` reports (upstream-formats.md §4), not the component-level golden F1."""
    import torch

    n = len(LABELS)
    tp = [0] * n
    fp = [0] * n
    fn = [0] * n
    losses = []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            ids, mask, labels = make_batch(examples[i : i + batch_size])
            losses.append(float(model.loss(ids, mask, labels)) * ids.shape[0])
            pred = model(ids, mask).argmax(-1)
            real = labels != -100
            g = labels[real].tolist()
            p = pred[real].tolist()
            for a, b in zip(g, p, strict=True):
                if a == b:
                    tp[a] += 1
                else:
                    fn[a] += 1
                    fp[b] += 1
    model.train()
    f1s = [2 * tp[k] / (2 * tp[k] + fp[k] + fn[k]) if tp[k] + fp[k] + fn[k] else 0.0 for k in range(n)]
    return sum(losses) / max(1, len(examples)), sum(f1s) / n


def model_config(vocab_size: int, overrides: dict | None = None) -> dict:
    cfg = dict(MODEL_CONFIG)
    cfg.update(overrides or {})
    cfg["vocab_size"] = vocab_size
    cfg["num_labels"] = len(LABELS)
    cfg["id2label"] = {str(i): lab for i, lab in enumerate(LABELS)}
    cfg["label2id"] = {lab: i for i, lab in enumerate(LABELS)}
    return cfg


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def save_checkpoint(run_dir: Path, step: int, model, cfg: dict, state: dict) -> Path:
    """Upstream layout (§1.1), written atomically as upstream HEAD does: .tmp-step-XXXXXX/, then
    training_state.json last, then rename. No optimizer/scheduler state (kept out of the repo)."""
    import torch

    name = f"step-{step:06d}"
    tmp = run_dir / f".tmp-{name}"
    final = run_dir / name
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    torch.save(model.state_dict(), tmp / "pytorch_model.bin")
    write_json(tmp / "config.json", cfg)
    write_json(tmp / "training_state.json", state)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def train_run(
    name: str,
    recipe: dict,
    run_dir: Path,
    tok_bytes: bytes,
    settings: dict,
    gaz: dict,
    golden: set[str],
    log=print,
    golden_files: dict[str, str] | None = None,
) -> Path:
    import torch

    from mailwoman_eval.checkpoints.model import MailwomanCoarseEncoder, count_parameters
    from mailwoman_eval.tokenizer import Tokenizer

    tcfg, dcfg = settings["train"], settings["data"]
    seed = int(tcfg["seed"])
    torch.set_num_threads(int(tcfg["num_threads"]))
    torch.manual_seed(seed)

    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "tokenizer.model").write_bytes(tok_bytes)
    tok = Tokenizer(run_dir / "tokenizer.model")

    t0 = time.time()
    stats: dict = {}
    train_rows = generate_corpus(recipe, seed, dcfg["train_rows"], exclude=golden, gaz=gaz, stats=stats)
    # held out: no val raw is a train raw (nor a golden raw)
    held_out = golden | {normalize_raw(r.raw) for r in train_rows}
    val_rows = generate_corpus(recipe, seed + 1, dcfg["val_rows"], exclude=held_out, gaz=gaz)
    train_ex = encode_rows(tok, train_rows)
    val_ex = encode_rows(tok, val_rows)
    log(
        f"[{name}] corpus {len(train_ex)} train / {len(val_ex)} val rows ({stats['dropped_golden_rows']} dropped as golden) in {time.time() - t0:.1f}s"
    )

    cfg = model_config(tok.vocab_size, settings["model"])
    torch.manual_seed(seed)
    model = MailwomanCoarseEncoder(cfg, LABELS)
    model.train()
    log(f"[{name}] {count_parameters(model):,} parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg["learning_rate"], weight_decay=tcfg["weight_decay"])
    warmup, max_steps = int(tcfg["warmup_steps"]), int(tcfg["max_steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, max_steps))

    state_config = {
        "data": {
            "corpus_dir": f"generated by scripts/train_demo.py (recipe {name!r}, seed {seed})",
            "tokenizer_dir": ".",
            "max_length": MAX_LENGTH,
            "source_weights": dict(recipe["source_weights"]),
            "train_rows": dcfg["train_rows"],
            "val_rows": dcfg["val_rows"],
            "val_seed": seed + 1,
            "tokenizer": {
                "model_type": "unigram",
                "vocab_size": tok.vocab_size,
                "rows": dcfg["tokenizer_rows"],
                "sha256": tok.sha256,
            },
            "golden_excluded": {
                "dir": "golden/demo-v1",
                "raws": len(golden),
                "dropped_rows": stats["dropped_golden_rows"],
                "files_sha256": golden_files or {},
            },
            "labels": "STAGE2_TAGS + (unit, po_box)",
        },
        "model": {
            k: v
            for k, v in cfg.items()
            if k not in ("id2label", "label2id", "model_type", "vocab_size", "num_labels", "pad_token_id")
        },
        "train": {
            **{k: v for k, v in tcfg.items()},
            "output_dir": f"demo/runs/{name}",
            "save_steps": list(recipe["save_steps"]),
            "ship_step": recipe["ship_step"],
            "csv_log_path": "{output_dir}/train_log.csv",
        },
    }

    rng = random.Random(seed)
    order: list[int] = []
    bs = int(tcfg["batch_size"])
    save_steps = set(recipe["save_steps"])
    stop = int(recipe["ship_step"])
    log_every = int(tcfg["log_every_steps"])
    csv_lines = ["step,wall_seconds,train_loss,lr,val_loss,val_macro_f1"]
    running: list[float] = []
    t_start = time.time()
    for step in range(1, stop + 1):
        if len(order) < bs:
            perm = list(range(len(train_ex)))
            rng.shuffle(perm)
            order.extend(perm)
        batch = [train_ex[i] for i in order[:bs]]
        del order[:bs]
        ids, mask, labels = make_batch(batch)
        loss = model.loss(ids, mask, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip_norm"])
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % log_every == 0 or step in save_steps:
            lr = sched.get_last_lr()[0]
            val_loss = val_f1 = ""
            if step in save_steps:
                vl, vf = evaluate_val(model, val_ex)
                val_loss, val_f1 = f"{vl:.6f}", f"{vf:.6f}"
            train_loss = sum(running) / len(running)
            running = []
            csv_lines.append(
                f"{step},{time.time() - t_start:.1f},{train_loss:.6f},{lr:.8f},{val_loss},{val_f1}"
            )
            if step in save_steps:
                model.eval()
                save_checkpoint(
                    run_dir,
                    step,
                    model,
                    cfg,
                    {"step": step, "config": state_config, "vocab_size": tok.vocab_size},
                )
                model.train()
                log(
                    f"[{name}] step {step} loss {train_loss:.4f} lr {lr:.2e} val_loss {val_loss} val_macro_f1 {val_f1} ({time.time() - t_start:.0f}s)"
                )
            (run_dir / "train_log.csv").write_text("\n".join(csv_lines) + "\n", encoding="utf-8")
    model.eval()
    ship = run_dir / f"step-{stop:06d}"
    export_onnx(model, run_dir / "onnx", log=lambda m: log(f"[{name}] {m}"))
    log(f"[{name}] done in {time.time() - t0:.0f}s")
    return ship


# ---------------------------------------------------------------------------------------------
# ONNX export (upstream-formats.md §5.1)


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's and quantizer's advisory warnings (opset fallback, pre-processing)."""
    names = ("", "torch.onnx", "onnxscript", "onnxscript.version_converter")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for n in names:
                logging.getLogger(n).setLevel(logging.ERROR)
            yield
    finally:
        for n, lvl in levels.items():
            logging.getLogger(n).setLevel(lvl)


def export_onnx(model, out_dir: Path, log=print) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids, attention_mask)

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    wrapper = LogitsOnly(model).eval()
    vocab = model.token_embeddings.num_embeddings
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (2, 16), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=MAX_LENGTH)
    fp32 = out_dir / "model.onnx"
    with _quiet():
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(fp32),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            opset_version=17,
            dynamo=True,
            external_data=False,
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            verbose=False,
        )
    proto = onnx.load(str(fp32))
    opset = {o.domain: o.version for o in proto.opset_import}.get("", None)
    if opset != 17:
        raise RuntimeError(f"exported opset {opset}, expected 17")

    # Parity with torch on batch 2 / length 7, batch 1 / length 128 and batch 2 / length 128.
    sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    worst = 0.0
    for b, s in ((2, 7), (1, MAX_LENGTH), (2, MAX_LENGTH)):
        x = torch.randint(4, vocab, (b, s), generator=g)
        m = torch.ones_like(x)
        if b > 1:
            m[1, s // 2 :] = 0
        with torch.no_grad():
            ref = model(x, m).numpy()
        got = sess.run(["logits"], {"input_ids": x.numpy(), "attention_mask": m.numpy()})[0]
        if got.shape != ref.shape or got.dtype != np.float32:
            raise RuntimeError(f"ONNX logits {got.shape} {got.dtype} vs torch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > 1e-4:
        raise RuntimeError(f"ONNX/torch logits differ by {worst:.2e} (> 1e-4)")

    int8 = out_dir / "model.int8.onnx"
    with _quiet():
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(
        ["logits"],
        {
            "input_ids": np.ones((1, MAX_LENGTH), dtype=np.int64),
            "attention_mask": np.ones((1, MAX_LENGTH), dtype=np.int64),
        },
    )

    crf = model.crf
    sidecar = {
        "labels": list(model.labels),
        "transitions": crf.transitions.detach().float().tolist(),
        "start_transitions": crf.start_transitions.detach().float().tolist(),
        "end_transitions": crf.end_transitions.detach().float().tolist(),
    }
    write_json(out_dir / "crf-transitions.json", sidecar)
    log(f"onnx: opset {opset}, max |onnx - torch| {worst:.1e}, int8 + crf-transitions.json written")


# ---------------------------------------------------------------------------------------------
# CLI


def build_settings(tiny: bool) -> tuple[dict, dict[str, dict]]:
    settings = {"model": {}, "train": dict(TRAIN_CONFIG), "data": dict(DATA_CONFIG)}
    recipes = copy.deepcopy(RECIPES)
    if tiny:
        settings["model"].update(TINY["model"])
        settings["train"].update(TINY["train"])
        settings["data"].update(TINY["data"])
        for r in recipes.values():
            r["save_steps"] = list(TINY["save_steps"])
            r["ship_step"] = TINY["ship_step"]
    return settings, recipes


def tokenizer_recipe(recipes: dict[str, dict]) -> dict:
    """The tokenizer sees every source any run uses, at equal weight, so it is shared fairly."""
    names = sorted({s for r in recipes.values() for s in r["source_weights"]})
    return {"source_weights": {s: 1.0 for s in names}}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO_ROOT / "demo" / "runs"), help="output directory for the runs")
    ap.add_argument("--runs", default="baseline,regressed", help="comma-separated recipe names")
    ap.add_argument("--tiny", action="store_true", help="tiny config for tests: whole pipeline in seconds")
    ap.add_argument(
        "--golden", default=str(GOLDEN_DIR), help="golden dir whose raws are kept out of the corpus"
    )
    args = ap.parse_args(argv)

    settings, recipes = build_settings(args.tiny)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    unknown = [n for n in names if n not in recipes]
    if unknown:
        ap.error(f"unknown run(s) {unknown}; choose from {sorted(recipes)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    gaz = load_gazetteers()
    golden = load_golden_raws(Path(args.golden))
    print(f"golden raws excluded: {len(golden)} (from {args.golden})", flush=True)

    seed = int(settings["train"]["seed"])
    tok_rows = generate_corpus(
        tokenizer_recipe(recipes), seed + 2, settings["data"]["tokenizer_rows"], exclude=golden, gaz=gaz
    )
    tok_bytes = train_tokenizer(tok_rows, settings["data"]["vocab_size"])
    print(
        f"tokenizer: {len(tok_bytes)} bytes, trained on {len(tok_rows)} rows in {time.time() - t0:.1f}s",
        flush=True,
    )

    for name in names:
        train_run(
            name,
            recipes[name],
            out / name,
            tok_bytes,
            settings,
            gaz,
            golden,
            log=lambda m: print(m, flush=True),
            golden_files=golden_fingerprint(Path(args.golden)),
        )
    print(f"total {time.time() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
