#!/usr/bin/env python3
"""Generate the bundled demo golden set `golden/demo-v1/` (deterministic, seeded, stdlib only).

    python scripts/make_demo_golden.py [--out DIR] [--seed N]

Writes us.jsonl, fr.jsonl, adversarial.jsonl, MANIFEST.json and README.md into DIR. Rows are built
from the small gazetteers and hand-written rows in `demo_golden_data.py`; nothing comes from the
upstream golden sets. Same seed => byte-identical files.

Every row is assembled from segments (literal separators and tagged values), so the generator
knows where each value sits. A generated row is kept only if, for every tag, the *first*
occurrence of its value in `raw` is the intended one (upstream paints gold labels with
`raw.find(value)`), except for the rows that deliberately repeat the locality inside the venue.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo_golden_data as D  # noqa: E402

DEFAULT_SEED = 20261126
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "golden" / "demo-v1"
CREATED_BY = "scripts/make_demo_golden.py"
MAX_RAW_LEN = 120

ALLOWED_TAGS = (
    "country", "region", "locality", "dependent_locality", "postcode", "subregion", "cedex", "venue",
    "street", "house_number", "unit", "po_box",
)  # fmt: skip
ADVERSARIAL_ONLY_TAGS = ("attention",)

# A segment is a literal separator (str) or a tagged value (tag, text).
Seg = str | tuple[str, str]


@dataclass
class Row:
    raw: str
    components: dict[str, str]
    country: str
    source: str
    notes: str = ""

    def to_json(self) -> dict:
        obj: dict = {
            "raw": self.raw,
            "components": self.components,
            "country": self.country,
            "source": self.source,
        }
        if self.notes:
            obj["notes"] = self.notes
        return obj


class RowError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Assembly and checks


def assemble(parts: Sequence[Seg], shadow_ok: Sequence[str] = ()) -> tuple[str, dict[str, str]] | None:
    """Join segments into (raw, components). None if a value's first occurrence is not its own
    segment (unless the tag is in `shadow_ok`), or the row breaks a formatting rule."""
    chunks: list[str] = []
    comps: dict[str, str] = {}
    starts: dict[str, int] = {}
    pos = 0
    for seg in parts:
        if isinstance(seg, str):
            text = seg
        else:
            tag, text = seg
            if tag in comps:
                raise RowError(f"tag {tag!r} twice in one row")
            comps[tag] = text
            starts[tag] = pos
        chunks.append(text)
        pos += len(text)
    raw = "".join(chunks)
    if raw != raw.strip() or len(raw) > MAX_RAW_LEN:
        return None
    for tag, value in comps.items():
        if not value or value != value.strip():
            return None
        if tag not in shadow_ok and raw.find(value) != starts[tag]:
            return None
    return raw, comps


def first_occurrence_overlaps(raw: str, comps: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs of tags whose first-occurrence spans (upstream `raw.find`) overlap."""
    spans = [(t, raw.find(v), raw.find(v) + len(v)) for t, v in comps.items()]
    return [
        (a, b) for i, (a, s1, e1) in enumerate(spans) for b, s2, e2 in spans[i + 1 :] if s1 < e2 and s2 < e1
    ]


def overlap_allowed(comps: dict[str, str], a: str, b: str) -> bool:
    """A venue that contains another value (Buffalo Clinic … Buffalo) is the one accepted overlap."""
    return (a == "venue" and comps[b] in comps[a]) or (b == "venue" and comps[a] in comps[b])


def check_row(row: Row, adversarial: bool) -> None:
    allowed = ALLOWED_TAGS + (ADVERSARIAL_ONLY_TAGS if adversarial else ())
    if not row.raw or row.raw != row.raw.strip():
        raise RowError(f"raw has surrounding whitespace: {row.raw!r}")
    if len(row.raw) > MAX_RAW_LEN:
        raise RowError(f"raw longer than {MAX_RAW_LEN}: {row.raw!r}")
    if row.country not in ("US", "FR"):
        raise RowError(f"country {row.country!r}: {row.raw!r}")
    for tag, value in row.components.items():
        if tag not in allowed:
            raise RowError(f"tag {tag!r} not allowed: {row.raw!r}")
        if not value or value != value.strip():
            raise RowError(f"{tag} value {value!r} empty or padded: {row.raw!r}")
        if value not in row.raw:
            raise RowError(f"{tag} value {value!r} not a substring of {row.raw!r}")
    if adversarial and not row.notes.startswith(("kryptonite/", "graceful/")):
        raise RowError(f"adversarial row without kryptonite/ or graceful/ notes: {row.raw!r}")
    if not row.notes.startswith("kryptonite/"):
        for a, b in first_occurrence_overlaps(row.raw, row.components):
            if not overlap_allowed(row.components, a, b):
                raise RowError(f"{a} and {b} overlap at their first occurrence: {row.raw!r}")


# ---------------------------------------------------------------------------------------------
# Segment transforms (applied to whole rows: gold values change with raw, so they stay substrings)


def upper(parts: Sequence[Seg]) -> list[Seg]:
    return [p.upper() if isinstance(p, str) else (p[0], p[1].upper()) for p in parts]


def lower(parts: Sequence[Seg]) -> list[Seg]:
    return [p.lower() if isinstance(p, str) else (p[0], p[1].lower()) for p in parts]


def drop_commas(parts: Sequence[Seg]) -> list[Seg]:
    out: list[Seg] = []
    for p in parts:
        if isinstance(p, str) and "," in p:
            p = " ".join(p.replace(",", " ").split())
            p = f" {p} " if p else " "
        out.append(p)
    return out


def widen_spaces(rng: random.Random, parts: Sequence[Seg]) -> list[Seg]:
    """Double or triple some separator spaces; sometimes double a space inside the street."""
    out: list[Seg] = []
    for p in parts:
        if isinstance(p, str) and " " in p and rng.random() < 0.6:
            p = p.replace(" ", " " * rng.choice((2, 2, 3)), 1)
        elif not isinstance(p, str) and p[0] == "street" and " " in p[1] and rng.random() < 0.3:
            p = (p[0], p[1].replace(" ", "  ", 1))
        out.append(p)
    if not any(isinstance(p, str) and "  " in p for p in out):
        i = next(i for i, p in enumerate(out) if isinstance(p, str) and " " in p)
        out[i] = out[i].replace(" ", "  ", 1)  # type: ignore[union-attr]
    return out


def typo_word(rng: random.Random, text: str) -> str | None:
    """One single-letter edit (drop, swap, double) inside a word of >= 5 letters."""
    words = [(i, w) for i, w in enumerate(text.split(" ")) if len(w) >= 5 and w.isalpha()]
    if not words:
        return None
    i, w = rng.choice(words)
    k = rng.randrange(1, len(w) - 1)
    op = rng.choice(("drop", "swap", "double"))
    if op == "drop":
        nw = w[:k] + w[k + 1 :]
    elif op == "swap":
        if w[k] == w[k + 1]:
            return None
        nw = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
    else:
        nw = w[: k + 1] + w[k] + w[k + 1 :]
    ws = text.split(" ")
    ws[i] = nw
    return " ".join(ws)


def with_typo(rng: random.Random, parts: Sequence[Seg], tags: Sequence[str]) -> list[Seg] | None:
    cands = [i for i, p in enumerate(parts) if not isinstance(p, str) and p[0] in tags]
    if not cands:
        return None
    i = rng.choice(cands)
    tag, text = parts[i]  # type: ignore[misc]
    new = typo_word(rng, text)
    if new is None or new == text:
        return None
    out = list(parts)
    out[i] = (tag, new)
    return out


# ---------------------------------------------------------------------------------------------
# US pieces


def us_place(rng: random.Random) -> tuple[str, str, str]:
    city, state, zips = rng.choice(D.US_LOCALITIES)
    return city, state, rng.choice(zips)


def us_zip(rng: random.Random, base: str, plus4: float = 0.15) -> str:
    return f"{base}-{rng.randrange(1, 10000):04d}" if rng.random() < plus4 else base


def us_house_number(rng: random.Random) -> str:
    digits = rng.choices((1, 2, 3, 4, 5), weights=(8, 27, 37, 26, 2))[0]
    lo = 1 if digits == 1 else 10 ** (digits - 1)
    return str(rng.randrange(lo, 10**digits))


def us_street(rng: random.Random) -> str:
    name = rng.choice(D.US_STREET_NAMES)
    suffix = rng.choice(D.US_STREET_SUFFIXES)
    street = f"{name} {suffix}"
    r = rng.random()
    if r < 0.15:
        street = f"{rng.choice(D.US_DIRECTIONALS[:4])} {street}"
    elif r < 0.22:
        street = f"{street} {rng.choice(D.US_DIRECTIONALS)}"
    return street


def us_po_box(rng: random.Random) -> str:
    n = rng.choice((rng.randrange(1, 100), rng.randrange(100, 1000), rng.randrange(1000, 10000)))
    return rng.choice(D.US_PO_BOX_FORMS).format(n=n)


def us_country(rng: random.Random) -> str:
    return rng.choice(D.US_COUNTRY_LINES)


def us_tail(rng: random.Random, city: str, state: str, zc: str, country: bool) -> list[Seg]:
    """'City, ST 12345[, USA]' — the US-standard locality line (postcode after locality)."""
    tail: list[Seg] = [("locality", city), ", ", ("region", state), " ", ("postcode", zc)]
    if country:
        tail += [", ", ("country", us_country(rng))]
    return tail


def us_standard(rng: random.Random) -> list[Seg]:
    city, state, z = us_place(rng)
    parts: list[Seg] = []
    if rng.random() < 0.15:
        parts += [("venue", rng.choice(D.US_VENUES)), ", "]
    parts += [("house_number", us_house_number(rng)), " ", ("street", us_street(rng)), ", "]
    return parts + us_tail(rng, city, state, us_zip(rng, z), rng.random() < 0.3)


def us_unit(rng: random.Random) -> list[Seg]:
    city, state, z = us_place(rng)
    unit = rng.choice(D.US_UNITS)
    hn, street = us_house_number(rng), us_street(rng)
    r = rng.random()
    if r < 0.55:
        head: list[Seg] = [("house_number", hn), " ", ("street", street), " ", ("unit", unit), ", "]
    elif r < 0.85:
        head = [("house_number", hn), " ", ("street", street), ", ", ("unit", unit), ", "]
    else:
        head = [("unit", unit), ", ", ("house_number", hn), " ", ("street", street), ", "]
    return head + us_tail(rng, city, state, us_zip(rng, z), rng.random() < 0.2)


def us_po_box_row(rng: random.Random) -> list[Seg]:
    city, state, z = us_place(rng)
    parts: list[Seg] = []
    if rng.random() < 0.25:
        parts += [("venue", rng.choice(D.US_VENUES)), ", "]
    parts += [("po_box", us_po_box(rng)), ", "]
    return parts + us_tail(rng, city, state, us_zip(rng, z, 0.25), rng.random() < 0.2)


def us_postcode_first(rng: random.Random) -> list[Seg]:
    city, state, z = us_place(rng)
    zc = us_zip(rng, z, 0.1)
    r = rng.random()
    if r < 0.35:
        return [("postcode", zc), " ", ("locality", city), " ", ("region", state)]
    if r < 0.6:
        return [
            ("postcode", zc),
            " ",
            ("locality", city),
            ", ",
            ("region", state),
            ", ",
            ("country", us_country(rng)),
        ]
    if r < 0.8:
        return [
            ("house_number", us_house_number(rng)), " ", ("street", us_street(rng)), ", ",
            ("postcode", zc), " ", ("locality", city), " ", ("region", state),
        ]  # fmt: skip
    return [("postcode", zc), " ", ("locality", city), ", ", ("region", D.US_STATE_NAMES[state])]


def us_postcode_mid(rng: random.Random) -> list[Seg]:
    """Postcode followed by more text: a country line or a venue."""
    city, state, z = us_place(rng)
    zc = us_zip(rng, z, 0.15)
    r = rng.random()
    if r < 0.3:
        return us_tail(rng, city, state, zc, True)
    if r < 0.45:
        return [
            ("locality", city),
            " ",
            ("region", state),
            " ",
            ("postcode", zc),
            " ",
            ("country", us_country(rng)),
        ]
    head: list[Seg] = [("house_number", us_house_number(rng)), " ", ("street", us_street(rng)), ", "]
    if r < 0.75:
        venue = rng.choice(D.US_TRAILING_VENUE_PATTERNS).format(L=city)
        return head + us_tail(rng, city, state, zc, False) + [", ", ("venue", venue)]
    return head + us_tail(rng, city, state, zc, True)


def us_venue_locality(rng: random.Random) -> list[Seg]:
    city, state, z = us_place(rng)
    venue = rng.choice(D.US_VENUE_LOCALITY_PATTERNS).format(L=city)
    parts: list[Seg] = [
        ("venue", venue),
        ", ",
        ("house_number", us_house_number(rng)),
        " ",
        ("street", us_street(rng)),
        ", ",
    ]
    return parts + us_tail(rng, city, state, us_zip(rng, z), rng.random() < 0.2)


def us_admin(rng: random.Random) -> list[Seg]:
    """Full state names, counties (subregion), neighbourhoods (dependent_locality)."""
    r = rng.random()
    head: list[Seg] = [("house_number", us_house_number(rng)), " ", ("street", us_street(rng)), ", "]
    if r < 0.4:
        city, state, z = us_place(rng)
        return head + [("locality", city), ", ", ("region", D.US_STATE_NAMES[state]), " ", ("postcode", z)]
    if r < 0.7:
        city, state, county = rng.choice(D.US_COUNTIES)
        z = next(zs for c, s, zs in D.US_LOCALITIES if c == city and s == state)[0]
        return head + [
            ("locality", city),
            ", ",
            ("subregion", county),
            ", ",
            ("region", state),
            " ",
            ("postcode", z),
        ]
    hood, city, state, z = rng.choice(D.US_NEIGHBOURHOODS)
    return head + [
        ("dependent_locality", hood),
        ", ",
        ("locality", city),
        ", ",
        ("region", state),
        " ",
        ("postcode", z),
    ]


def us_partial(rng: random.Random) -> list[Seg]:
    city, state, z = us_place(rng)
    r = rng.random()
    if r < 0.4:
        return [("locality", city), ", ", ("region", state)]
    if r < 0.7:
        return [("locality", city), ", ", ("region", state), " ", ("postcode", z)]
    return [("locality", city), ", ", ("region", D.US_STATE_NAMES[state]), ", ", ("country", us_country(rng))]


def us_any(rng: random.Random) -> list[Seg]:
    return rng.choice((us_standard, us_standard, us_unit, us_po_box_row, us_postcode_mid))(rng)


def us_allcaps(rng: random.Random) -> list[Seg]:
    return upper(us_any(rng))


def us_no_commas(rng: random.Random) -> list[Seg]:
    return drop_commas(us_any(rng))


def us_whitespace(rng: random.Random) -> list[Seg]:
    return widen_spaces(rng, us_any(rng))


def us_typo(rng: random.Random) -> list[Seg] | None:
    return with_typo(rng, rng.choice((us_standard, us_unit))(rng), ("street", "locality"))


def us_non_latin(rng: random.Random) -> list[Seg]:
    r = rng.random()
    if r < 0.5:
        city, state, z = us_place(rng)
        return [
            ("venue", rng.choice(D.US_NON_LATIN_VENUES)), ", ", ("house_number", us_house_number(rng)), " ",
            ("street", us_street(rng)), ", ", *us_tail(rng, city, state, z, rng.random() < 0.3),
        ]  # fmt: skip
    script_city, city, state = rng.choice(D.US_NON_LATIN_LOCALITIES)
    z = rng.choice(next(zs for c, s, zs in D.US_LOCALITIES if c == city and s == state))
    return [
        ("house_number", us_house_number(rng)), " ", ("street", us_street(rng)), ", ",
        ("locality", script_city), ", ", ("region", state), " ", ("postcode", z), ", ",
        ("country", rng.choice(("United States", "USA", "United States of America"))),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# FR pieces


def fr_place(rng: random.Random) -> tuple[str, str, str, str]:
    commune, cps, dept, region = rng.choice(D.FR_COMMUNES)
    return commune, rng.choice(cps), dept, region


def fr_house_number(rng: random.Random) -> str:
    n = str(
        rng.choices(
            (rng.randrange(1, 20), rng.randrange(20, 100), rng.randrange(100, 400)), weights=(50, 35, 15)
        )[0]
    )
    if rng.random() < 0.08:
        n += " " + rng.choice(D.FR_HOUSE_SUFFIXES)
    return n


def fr_street(rng: random.Random) -> str:
    return f"{rng.choice(D.FR_STREET_TYPES)} {rng.choice(D.FR_STREET_NAMES)}"


def fr_de(pattern: str, commune: str) -> str:
    """Fill '... de {L}' with French elision/contraction: d'Annecy, du Havre."""
    if "de {L}" in pattern:
        if commune[0] in "AEIOUYÉÈÊÎÔ":
            return pattern.replace("de {L}", "d'" + commune)
        if commune.startswith("Le "):
            return pattern.replace("de {L}", "du " + commune[3:])
        if commune.startswith("Les "):
            return pattern.replace("de {L}", "des " + commune[4:])
    return pattern.format(L=commune)


def fr_country(rng: random.Random) -> str:
    return rng.choice(D.FR_COUNTRY_LINES)


def fr_head(rng: random.Random, comma_after_number: bool = False) -> list[Seg]:
    sep = ", " if comma_after_number else " "
    return [("house_number", fr_house_number(rng)), sep, ("street", fr_street(rng))]


def fr_standard(rng: random.Random) -> list[Seg]:
    """'12 Rue X, 69002 Lyon[, France]' — standard French order (postcode before commune)."""
    commune, cp, _, _ = fr_place(rng)
    parts: list[Seg] = []
    if rng.random() < 0.12:
        parts += [("venue", rng.choice(D.FR_VENUES)), ", "]
    parts += fr_head(rng, rng.random() < 0.08) + [", ", ("postcode", cp), " ", ("locality", commune)]
    if rng.random() < 0.3:
        parts += [", ", ("country", fr_country(rng))]
    return parts


def fr_postcode_first(rng: random.Random) -> list[Seg]:
    """The line starts with the postcode: '75008 Paris, 12 Rue X' / '75008 Paris'."""
    commune, cp, _, _ = fr_place(rng)
    r = rng.random()
    if r < 0.45:
        return [("postcode", cp), " ", ("locality", commune), ", ", *fr_head(rng)]
    if r < 0.65:
        return [("postcode", cp), " ", ("locality", commune), " ", *fr_head(rng)]
    if r < 0.85:
        return [("postcode", cp), " ", ("locality", commune)]
    return [("postcode", cp), ", ", ("locality", commune), ", ", ("country", fr_country(rng))]


def fr_postcode_after(rng: random.Random) -> list[Seg]:
    """Commune before postcode: 'Paris 75008', '12 Rue X, Lyon 69002'."""
    commune, cp, _, _ = fr_place(rng)
    r = rng.random()
    if r < 0.35:
        return [("locality", commune), " ", ("postcode", cp)]
    if r < 0.55:
        return [("locality", commune), ", ", ("postcode", cp)]
    return [*fr_head(rng), ", ", ("locality", commune), " ", ("postcode", cp)]


def fr_postcode_mid(rng: random.Random) -> list[Seg]:
    """Postcode with text after it: 'Paris 75008 France', '3 Rue X, 69002 Lyon, Boulangerie Y'."""
    commune, cp, _, _ = fr_place(rng)
    r = rng.random()
    if r < 0.25:
        return [("locality", commune), " ", ("postcode", cp), " ", ("country", fr_country(rng))]
    if r < 0.4:
        return [("postcode", cp), " ", ("locality", commune), " ", ("country", fr_country(rng))]
    if r < 0.7:
        venue = fr_de(rng.choice(D.FR_TRAILING_VENUE_PATTERNS), commune)
        return [*fr_head(rng), ", ", ("postcode", cp), " ", ("locality", commune), ", ", ("venue", venue)]
    if r < 0.85:
        return [
            *fr_head(rng),
            ", ",
            ("locality", commune),
            " ",
            ("postcode", cp),
            ", ",
            ("country", fr_country(rng)),
        ]
    return [
        *fr_head(rng),
        " ",
        ("postcode", cp),
        " ",
        ("locality", commune),
        " ",
        ("country", fr_country(rng)),
    ]


def fr_cedex(rng: random.Random) -> list[Seg]:
    commune, cp, _, _ = fr_place(rng)
    dept = cp[:2]
    if commune in ("Paris", "Lyon", "Marseille"):
        arr = cp[-2:]
        cedex_cp, cedex = cp, rng.choice((f"Cedex {arr}", f"CEDEX {arr}", f"Cedex {int(arr)}"))
    else:
        cedex_cp = f"{dept}{rng.randrange(0, 1000):03d}"
        cedex = rng.choice(
            ("Cedex", "CEDEX", f"Cedex {rng.randrange(1, 10)}", f"CEDEX {rng.randrange(1, 10)}")
        )
    tail: list[Seg] = [("postcode", cedex_cp), " ", ("locality", commune), " ", ("cedex", cedex)]
    r = rng.random()
    if r < 0.4:
        return [*fr_head(rng), ", ", *tail]
    if r < 0.7:
        return [("po_box", rng.choice(D.FR_PO_BOX_FORMS).format(n=rng.randrange(1, 2000))), ", ", *tail]
    return [("venue", rng.choice(D.FR_VENUES)), ", ", *fr_head(rng), ", ", *tail]


def fr_po_box(rng: random.Random) -> list[Seg]:
    commune, cp, _, _ = fr_place(rng)
    box = rng.choice(D.FR_PO_BOX_FORMS).format(n=rng.randrange(1, 3000))
    parts: list[Seg] = []
    if rng.random() < 0.3:
        parts += [("venue", rng.choice(D.FR_VENUES)), ", "]
    parts += [("po_box", box), ", ", ("postcode", cp), " ", ("locality", commune)]
    if rng.random() < 0.3:
        parts += [", ", ("country", fr_country(rng))]
    return parts


def fr_venue_locality(rng: random.Random) -> list[Seg]:
    commune, cp, _, _ = fr_place(rng)
    venue = fr_de(rng.choice(D.FR_VENUE_LOCALITY_PATTERNS), commune)
    parts: list[Seg] = [
        ("venue", venue),
        ", ",
        *fr_head(rng),
        ", ",
        ("postcode", cp),
        " ",
        ("locality", commune),
    ]
    if rng.random() < 0.2:
        parts += [", ", ("country", fr_country(rng))]
    return parts


def fr_admin(rng: random.Random) -> list[Seg]:
    """Département (subregion) and région lines."""
    commune, cp, dept, region = fr_place(rng)
    r = rng.random()
    if r < 0.35:
        return [*fr_head(rng), ", ", ("postcode", cp), " ", ("locality", commune), ", ", ("subregion", dept)]
    if r < 0.6:
        return [
            ("postcode", cp),
            " ",
            ("locality", commune),
            ", ",
            ("subregion", dept),
            ", ",
            ("region", region),
        ]
    if r < 0.8:
        return [*fr_head(rng), ", ", ("locality", commune), " (", ("subregion", dept), ")"]
    return [("locality", commune), ", ", ("region", region), ", ", ("country", fr_country(rng))]


def fr_dependent(rng: random.Random) -> list[Seg]:
    dep, commune, cp = rng.choice(D.FR_DEPENDENT)
    if rng.random() < 0.5:
        return [
            *fr_head(rng),
            ", ",
            ("dependent_locality", dep),
            ", ",
            ("postcode", cp),
            " ",
            ("locality", commune),
        ]
    return [
        *fr_head(rng),
        ", ",
        ("postcode", cp),
        " ",
        ("locality", commune),
        " (",
        ("dependent_locality", dep),
        ")",
    ]


def fr_unit(rng: random.Random) -> list[Seg]:
    commune, cp, _, _ = fr_place(rng)
    unit = rng.choice(D.FR_UNITS)
    tail: list[Seg] = [", ", ("postcode", cp), " ", ("locality", commune)]
    if rng.random() < 0.5:
        return [("unit", unit), ", ", *fr_head(rng), *tail]
    return [*fr_head(rng), ", ", ("unit", unit), *tail]


def fr_any(rng: random.Random) -> list[Seg]:
    return rng.choice((fr_standard, fr_standard, fr_postcode_first, fr_postcode_mid, fr_po_box))(rng)


def fr_allcaps(rng: random.Random) -> list[Seg]:
    return upper(fr_any(rng))


def fr_lowercase(rng: random.Random) -> list[Seg]:
    return lower(fr_any(rng))


def fr_no_commas(rng: random.Random) -> list[Seg]:
    return drop_commas(fr_any(rng))


def fr_whitespace(rng: random.Random) -> list[Seg]:
    return widen_spaces(rng, fr_any(rng))


def fr_typo(rng: random.Random) -> list[Seg] | None:
    return with_typo(rng, rng.choice((fr_standard, fr_postcode_first))(rng), ("street", "locality"))


def fr_non_latin(rng: random.Random) -> list[Seg]:
    commune, cp, _, _ = fr_place(rng)
    r = rng.random()
    if r < 0.35:
        return [
            ("venue", rng.choice(D.FR_NON_LATIN_VENUES)),
            ", ",
            *fr_head(rng),
            ", ",
            ("postcode", cp),
            " ",
            ("locality", commune),
        ]
    if r < 0.7:
        script_commune, real = rng.choice(D.FR_NON_LATIN_COMMUNES)
        cp = rng.choice(next(cps for c, cps, _, _ in D.FR_COMMUNES if c == real))
        return [
            *fr_head(rng),
            ", ",
            ("postcode", cp),
            " ",
            ("locality", script_commune),
            ", ",
            ("country", "France"),
        ]
    street = rng.choice(D.FR_NON_LATIN_STREETS)
    return [
        ("house_number", fr_house_number(rng)),
        " ",
        ("street", street),
        ", ",
        ("postcode", cp),
        " ",
        ("locality", commune),
    ]


# ---------------------------------------------------------------------------------------------
# Driver

Maker = Callable[[random.Random], "list[Seg] | None"]

# (source suffix, maker, rows wanted, tags allowed to be shadowed by an earlier occurrence)
US_PLAN: tuple[tuple[str, Maker, int, tuple[str, ...]], ...] = (
    ("us-standard", us_standard, 90, ()),
    ("us-unit", us_unit, 28, ()),
    ("us-po-box", us_po_box_row, 20, ()),
    ("us-postcode-first", us_postcode_first, 16, ()),
    ("us-postcode-mid", us_postcode_mid, 26, ()),
    ("us-venue-locality", us_venue_locality, 18, ("locality",)),
    ("us-admin", us_admin, 20, ()),
    ("us-partial", us_partial, 12, ()),
    ("us-allcaps", us_allcaps, 15, ()),
    ("us-no-commas", us_no_commas, 15, ()),
    ("us-whitespace", us_whitespace, 12, ()),
    ("us-typo", us_typo, 16, ()),
    ("us-non-latin", us_non_latin, 18, ()),
)

FR_PLAN: tuple[tuple[str, Maker, int, tuple[str, ...]], ...] = (
    ("fr-standard", fr_standard, 50, ()),
    ("fr-postcode-first", fr_postcode_first, 24, ()),
    ("fr-postcode-after", fr_postcode_after, 16, ()),
    ("fr-postcode-mid", fr_postcode_mid, 26, ()),
    ("fr-cedex", fr_cedex, 8, ()),
    ("fr-po-box", fr_po_box, 8, ()),
    ("fr-venue-locality", fr_venue_locality, 14, ("locality",)),
    ("fr-admin", fr_admin, 12, ()),
    ("fr-dependent-locality", fr_dependent, 6, ()),
    ("fr-unit", fr_unit, 8, ()),
    ("fr-allcaps", fr_allcaps, 10, ()),
    ("fr-lowercase", fr_lowercase, 5, ()),
    ("fr-no-commas", fr_no_commas, 10, ()),
    ("fr-whitespace", fr_whitespace, 8, ()),
    ("fr-typo", fr_typo, 10, ()),
    ("fr-non-latin", fr_non_latin, 13, ()),
)


def generate(
    rng: random.Random, country: str, plan: Sequence[tuple[str, Maker, int, tuple[str, ...]]], seen: set[str]
) -> list[Row]:
    rows: list[Row] = []
    for source, maker, wanted, shadow_ok in plan:
        made = attempts = 0
        while made < wanted:
            attempts += 1
            if attempts > wanted * 200:
                raise RowError(f"{source}: could only make {made}/{wanted} rows")
            parts = maker(rng)
            if not parts:
                continue
            built = assemble(parts, shadow_ok)
            if built is None or built[0] in seen:
                continue
            raw, comps = built
            row = Row(raw, comps, country, f"demo-gen:{source}")
            check_row(row, adversarial=False)
            seen.add(raw)
            rows.append(row)
            made += 1
    return rows


def hand_rows(
    table: Sequence[tuple[str, dict[str, str], str, str]], source: str, adversarial: bool, seen: set[str]
) -> list[Row]:
    rows = []
    for raw, comps, country, notes in table:
        row = Row(raw, dict(comps), country, source, notes)
        check_row(row, adversarial)
        if raw in seen:
            raise RowError(f"duplicate raw {raw!r}")
        seen.add(raw)
        rows.append(row)
    return rows


def interleave(rng: random.Random, rows: list[Row]) -> list[Row]:
    out = list(rows)
    rng.shuffle(out)
    return out


def jsonl_bytes(rows: Sequence[Row]) -> bytes:
    lines = [json.dumps(r.to_json(), ensure_ascii=False, separators=(",", ":")) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build(seed: int) -> dict[str, list[Row]]:
    seen: set[str] = set()
    adversarial = hand_rows(D.ADVERSARIAL_ROWS, "demo-hand", True, seen)
    us = generate(random.Random(f"{seed}:us"), "US", US_PLAN, seen) + hand_rows(
        D.US_HAND_ROWS, "demo-hand", False, seen
    )
    fr = generate(random.Random(f"{seed}:fr"), "FR", FR_PLAN, seen) + hand_rows(
        D.FR_HAND_ROWS, "demo-hand", False, seen
    )
    shuffle = random.Random(f"{seed}:order")
    return {
        "adversarial.jsonl": adversarial,
        "fr.jsonl": interleave(shuffle, fr),
        "us.jsonl": interleave(shuffle, us),
    }


def readme_text(seed: int, files: dict[str, list[Row]]) -> str:
    def sources(rows: list[Row]) -> str:
        counts = Counter(r.source for r in rows)
        return "\n".join(f"  - `{s}`: {n}" for s, n in sorted(counts.items()))

    kinds = Counter(r.notes.split(":", 1)[0] for r in files["adversarial.jsonl"])
    kind_lines = "\n".join(f"  - `{k}`: {n}" for k, n in sorted(kinds.items()))
    n = {name: len(rows) for name, rows in files.items()}
    tags = ", ".join(f"`{t}`" for t in ALLOWED_TAGS)
    return f"""# Demo golden set `demo-v1`

A small golden set that ships with `mailwoman_eval` so `mweval` can be tried without the upstream
data. **It is not an upstream golden version** (not v0.1.x) and shares no rows with the upstream
golden sets: every row was generated by `scripts/make_demo_golden.py` or written by hand for this
project. Do not compare its scores with scores on upstream sets.

This file, the three `*.jsonl` files and `MANIFEST.json` are all written by the generator; edit
`scripts/make_demo_golden.py` / `scripts/demo_golden_data.py` and re-run it instead of editing
them:

    python scripts/make_demo_golden.py            # seed {seed}, writes golden/demo-v1/

The generator is deterministic (Python `random.Random` with string seeds derived from `{seed}`,
stdlib only): the same seed gives byte-identical files, which `tests/test_demo_golden.py` checks.

## How the rows were made

- **Generated rows** (`source: "demo-gen:<template>"`) combine small embedded gazetteers: about 100
  US localities with their state code and real ZIP codes, 70 US street names with suffixes and
  directionals, 60 French communes with their postcodes, département and région, French street
  types (Rue, Avenue, Boulevard, Place, Chemin, Impasse, Allée, Quai, Route, Cours) with about 55
  street names (many accented), and a few venue names per country. Place names and ordinary
  postcodes are real facts (CEDEX postcodes are made up: département + 3 random digits); the
  street/house-number/venue combinations are invented. Each row is built from tagged segments,
  and a generated row is kept only if the first occurrence of every component value in `raw` is
  the segment it came from (upstream paints gold labels with `raw.find(value)`), except in the
  `*-venue-locality` templates, where the venue deliberately repeats the locality. The
  hand-written rows obey the same rule except where a venue contains another value, and except
  the `kryptonite/` rows, some of which collide on purpose.
- **Hand-written rows** (`source: "demo-hand"`): all of `adversarial.jsonl` and a dozen rows each
  in `us.jsonl` and `fr.jsonl` (odd house numbers, rural routes, lieux-dits, `bis`, typographic
  apostrophes, …). Hand-written rows carry a `notes` string.

## Files

- `us.jsonl` ({n["us.jsonl"]} rows, `country: "US"`): US-standard lines with and without a country line
  (USA, US, U.S.A., United States, United States of America), units (Apt, Suite, Ste, #, Unit,
  Fl, …), PO boxes, ZIP+4, postcode-first lines (`62701 Springfield IL`), postcodes in mid
  position (followed by a country line or a venue), venues that repeat the locality, full state
  names, counties (`subregion`), neighbourhoods (`dependent_locality`), all-caps rows, rows
  without commas, rows with runs of spaces, typos, and about 5% mixed-script rows (CJK, Hangul,
  Cyrillic, Armenian, Arabic, Greek venue or locality names). Rows per source:
{sources(files["us.jsonl"])}
- `fr.jsonl` ({n["fr.jsonl"]} rows, `country: "FR"`): standard French order (`12 Rue X, 69002 Lyon`),
  postcode-first lines (`75008 Paris, 12 Rue X`), commune-before-postcode (`Paris 75008`),
  mid-position postcodes (`Paris 75008 France`, `…, 69002 Lyon, Mairie de Lyon`), CEDEX
  (`cedex` tag, e.g. `Cedex 08`), boîtes postales (`po_box`), venues that repeat the commune,
  département (`subregion`) and région lines, quartiers (`dependent_locality`), units (Bât.,
  Appt, …), accented and hyphenated communes and streets (é, è, ê, ç, ô, œ), all-caps and
  lower-case rows, rows without commas, extra spaces, typos, and about 5% mixed-script rows.
  Rows per source:
{sources(files["fr.jsonl"])}
- `adversarial.jsonl` ({n["adversarial.jsonl"]} rows, US and FR, all hand-written): every row has `notes`
  starting with `kryptonite/<kind>:` or `graceful/<kind>:`. Rows per kind:
{kind_lines}
- `MANIFEST.json`: `{{created_by, seed, files: {{<file>: {{entries, sha256}}}}}}` — the same `files`
  layout as upstream manifests; `sha256` is over the file bytes.

## Schema and rules

One compact JSON object per line: `raw`, `components` (`{{tag: string}}`), `country` (ISO-2),
`source`, optional `notes` — the upstream golden schema (docs: upstream-formats §6).

- Tags:
  {tags}.
  The street is one monolithic value (`Main St`, `Rue de la Paix`); there is no prefix/suffix
  split. The graceful/attention rows in `adversarial.jsonl` also carry `attention`,
  a tag outside the model's label set, to exercise the audit of unknown tags.
- **Every component value is an exact, case-sensitive substring of `raw`** with no leading or
  trailing whitespace. In all-caps, lower-case, whitespace and typo rows the gold value is the
  text as written (`RUE DES TANNEURS`, `Rue  Victor Hugo`, `Philadelpia`).
- No two rows share the same `raw`; rows are at most {MAX_RAW_LEN} characters.
"""


def write_set(out: Path, seed: int) -> dict[str, int]:
    files = build(seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest_files = {}
    for name in sorted(files):
        data = jsonl_bytes(files[name])
        (out / name).write_bytes(data)
        manifest_files[name] = {"entries": len(files[name]), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"created_by": CREATED_BY, "seed": seed, "files": manifest_files}
    (out / "MANIFEST.json").write_text(
        json.dumps(manifest, indent="\t", ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (out / "README.md").write_text(readme_text(seed, files), encoding="utf-8")
    return {name: len(rows) for name, rows in files.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    args = ap.parse_args(argv)
    try:
        counts = write_set(args.out, args.seed)
    except RowError as e:
        print(f"make_demo_golden: {e}", file=sys.stderr)
        return 1
    for name, n in sorted(counts.items()):
        print(f"{args.out / name}: {n} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
