"""SentencePiece pieces with Python char spans, exactly as upstream's `encode_with_spans`.

upstream-formats.md §3/§3.1: `proto` output gives UTF-8 *byte* offsets; each byte maps to the
index of the char it belongs to, and an offset equal to the byte length maps to len(raw). The
consequences are kept on purpose: a `▁Word` span includes the whitespace before it, the first
n-1 byte-fallback pieces of an unknown char are zero-width, and no special tokens are added.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from mailwoman_eval.errors import MwevalError
from mailwoman_eval.fsutil import refuse_special_file, sha256_bytes

MAX_LENGTH = 128  # upstream truncates input ids to 128 pieces


@dataclass(frozen=True, slots=True)
class Encoding:
    """All pieces of one raw string (not truncated); `begin`/`end` are Python char offsets."""

    pieces: tuple[str, ...]
    ids: tuple[int, ...]
    begin: tuple[int, ...]
    end: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.ids)
        if not (len(self.pieces) == len(self.begin) == len(self.end) == n):
            raise ValueError("pieces, ids and spans differ in length")
        # map(operator.gt) runs the comparison loop in C: built 4561x per evaluation
        if n and (min(self.begin) < 0 or any(map(operator.gt, self.begin, self.end))):
            b, e = next((b, e) for b, e in zip(self.begin, self.end, strict=True) if not 0 <= b <= e)
            raise ValueError(f"bad piece span ({b}, {e})")

    def __len__(self) -> int:
        return len(self.ids)


def byte_to_char_table(raw: str) -> list[int]:
    """table[b] = index of the char holding byte b; table[len(bytes)] = len(raw)."""
    if raw.isascii():
        return list(range(len(raw) + 1))
    table: list[int] = []
    for i, ch in enumerate(raw):
        table.extend([i] * len(ch.encode("utf-8", "surrogatepass")))
    table.append(len(raw))
    return table


def check_byte_offsets(sp, where: Path) -> None:
    """Spans are mapped from UTF-8 byte offsets. sentencepiece releases that give code points
    instead (0.2.0/0.2.1 did, for `immutable_proto`; upstream-formats.md §3.1) would shift every
    span after the first non-ASCII char without an error, so probe once and refuse."""
    probe = "aé"  # 3 UTF-8 bytes, 2 code points
    pieces = sp.encode(probe, out_type="proto").pieces
    end = pieces[-1].end if len(pieces) else None
    if end != len(probe.encode("utf-8")):
        raise MwevalError(
            f"sentencepiece {spm.__version__} reports piece offsets that are not UTF-8 bytes "
            f"(end {end} for {probe!r}); install sentencepiece>=0.2.2",
            where=str(where),
        )


class Tokenizer:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        refuse_special_file(self.path)  # a FIFO blocked the read forever, /dev/zero never ended
        if not self.path.is_file():
            raise MwevalError("tokenizer model not found", where=str(self.path))
        try:
            data = self.path.read_bytes()  # read once: what is hashed is what is loaded
        except OSError as e:
            raise MwevalError(f"cannot read the tokenizer model: {e.strerror}", where=str(self.path)) from None
        self.sp = spm.SentencePieceProcessor()
        try:
            ok = self.sp.LoadFromSerializedProto(data)
        except (OSError, RuntimeError) as e:
            detail = " ".join(str(e).split())
            if "ParseFromArray" in detail:  # from serialized bytes, sentencepiece names its C++ check
                detail = "INTERNAL: could not parse ModelProto"
            raise MwevalError(f"not a SentencePiece model ({detail[:120]})", where=str(self.path)) from None
        if not ok:
            raise MwevalError("not a SentencePiece model", where=str(self.path))
        self.sha256 = sha256_bytes(data)
        self.vocab_size = self.sp.GetPieceSize()
        self.pad_id = max(self.sp.pad_id(), 0)
        check_byte_offsets(self.sp, self.path)

    def encode(self, raw: str) -> Encoding:
        # sentencepiece 0.2.2/0.2.3 reject "immutable_proto"; "proto" gives byte offsets (§3.1).
        return _encoding(raw, self.sp.encode(raw, out_type="proto"))

    def encode_many(self, raws: list[str]) -> list[Encoding]:
        # one call for the list: sentencepiece loops in C++ (3x faster than a call per string)
        return [_encoding(raw, proto) for raw, proto in zip(raws, self.sp.encode(raws, out_type="proto"), strict=True)]


def _encoding(raw: str, proto) -> Encoding:
    # one pass over the pieces (each attribute is a call into sentencepiece), then transposed
    values = [(p.piece, p.id, p.begin, p.end) for p in proto.pieces]
    if not values:
        return Encoding((), (), (), ())
    pieces, ids, begin, end = zip(*values, strict=True)
    if not raw.isascii():  # byte offsets -> char offsets (identical for ASCII)
        table = byte_to_char_table(raw)
        begin, end = tuple(map(table.__getitem__, begin)), tuple(map(table.__getitem__, end))
    return Encoding(pieces, ids, begin, end)
