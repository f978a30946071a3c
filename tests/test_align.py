"""Gold labels on pieces by upstream's alignment rule (upstream-formats.md §3 and §4), with
hand-built piece spans: first occurrence, case-sensitive, later components overwrite; each piece
takes the tag of its first non-whitespace char (O if none); B/I recomputed from the previous piece.
Both the fused `gold_bio` and the three documented steps must give these labels."""

import pytest

from mailwoman_eval.align import bio_from_piece_tags, gold_bio, paint_components, paint_spans, piece_tags
from mailwoman_eval.tokenizer import Encoding


def enc(*spans):
    """(begin, end) char spans -> an Encoding (piece strings and ids do not matter here)."""
    return Encoding(tuple(f"p{i}" for i in range(len(spans))), tuple(range(len(spans))),
                    tuple(b for b, _ in spans), tuple(e for _, e in spans))


def three_steps(raw, comps, tags, e, limit=None):
    return bio_from_piece_tags(piece_tags(raw, e, paint_components(raw, comps, tags), limit))


BOTH = pytest.mark.parametrize("labels", [gold_bio, three_steps], ids=["fused", "three_steps"])
TAGS = ["house_number", "street", "postcode", "locality", "venue"]


@BOTH
def test_pieces_including_the_preceding_space_take_their_words_tag(labels):
    raw = "12 Main St 75004 Paris"  # "▁7500", "4": one entity over two pieces
    e = enc((0, 2), (2, 7), (7, 10), (10, 15), (15, 16), (16, 22))
    comps = {"house_number": "12", "street": "Main St", "postcode": "75004", "locality": "Paris"}
    assert labels(raw, comps, TAGS, e) == ["B-house_number", "B-street", "I-street", "B-postcode", "I-postcode", "B-locality"]
    assert labels(raw, comps, frozenset(TAGS), e) == labels(raw, comps, TAGS, e)
    assert labels(raw, comps, TAGS, e, 2) == ["B-house_number", "B-street"]  # truncated to the limit
    assert labels(raw, comps, TAGS, e, 99) == labels(raw, comps, TAGS, e)


@BOTH
def test_first_occurrence_and_later_components_overwrite(labels):
    raw = "Buffalo Health Clinic, Buffalo"
    e = enc((0, 7), (7, 14), (14, 21), (21, 22), (22, 30))
    # the locality is painted on the venue's "Buffalo" (first occurrence), over the venue
    assert labels(raw, {"venue": "Buffalo Health Clinic", "locality": "Buffalo"}, TAGS, e) == \
        ["B-locality", "B-venue", "I-venue", "O", "O"]
    # in the other order the venue, painted later, wins
    assert labels(raw, {"locality": "Buffalo", "venue": "Buffalo Health Clinic"}, TAGS, e) == \
        ["B-venue", "I-venue", "I-venue", "O", "O"]


@BOTH
def test_values_not_found_case_mismatched_empty_or_of_inactive_tags_are_skipped(labels):
    raw = "12 Main St"
    e = enc((0, 2), (2, 7), (7, 10))
    assert labels(raw, {"street": "main st", "house_number": "12"}, TAGS, e) == ["B-house_number", "O", "O"]  # case-sensitive
    assert labels(raw, {"street": "Elm St"}, TAGS, e) == ["O", "O", "O"]
    # not found paints nothing, not even the last char (find's -1 is not an index)
    assert labels("ab c", {"street": "zz"}, TAGS, enc((0, 2), (2, 4))) == ["O", "O"]
    assert paint_components("ab c", {"street": "zz"}, TAGS) == [None] * 4
    assert labels(raw, {"street": "", "house_number": "12"}, TAGS, e) == ["B-house_number", "O", "O"]
    assert labels(raw, {"unit": "Main St", "house_number": "12"}, TAGS, e) == ["B-house_number", "O", "O"]
    assert paint_components(raw, {"unit": "12", "street": "Main"}, ["street"]) == [None] * 3 + ["street"] * 4 + [None] * 3


@BOTH
def test_empty_and_all_whitespace_pieces_are_o_and_break_nothing(labels):
    # byte fallback: the first n-1 byte pieces of 京 are zero-width; the last owns the char
    raw = "京 Paris"
    e = enc((0, 0), (0, 0), (0, 1), (1, 7))
    assert labels(raw, {"locality": "京"}, TAGS, e) == ["O", "O", "B-locality", "O"]
    assert labels(raw, {"locality": "京 Paris"}, TAGS, e) == ["O", "O", "B-locality", "I-locality"]
    # an all-whitespace piece inside an entity is O, so the entity restarts with B after it
    raw = "Main  St"
    e = enc((0, 4), (4, 6), (6, 8))
    assert labels(raw, {"street": "Main  St"}, TAGS, e) == ["B-street", "O", "B-street"]


@BOTH
def test_a_piece_takes_its_first_non_whitespace_char_not_its_leading_space(labels):
    raw = "ab cd"
    e = enc((0, 2), (2, 5))  # "ab", " cd"
    # the space is painted street, "cd" locality: the piece " cd" is locality
    assert labels(raw, {"street": "ab ", "locality": "cd"}, TAGS, e) == ["B-street", "B-locality"]
    # painted space, unpainted word: O
    assert labels(raw, {"street": "ab "}, TAGS, e) == ["B-street", "O"]
    # the first non-space char decides even when a later char of the piece has another tag
    raw = "x abc"
    e = enc((0, 1), (1, 5))
    assert labels(raw, {"street": "a", "locality": "bc"}, TAGS, e) == ["O", "B-street"]


def test_adjacent_same_tag_entities_merge_and_a_tag_change_opens_b():
    assert bio_from_piece_tags(["a", "a", None, "a", "b", "b", "a"]) == ["B-a", "I-a", "O", "B-a", "B-b", "I-b", "B-a"]
    raw = "Paris Lyon"
    e = enc((0, 5), (5, 10))
    tags = piece_tags(raw, e, paint_spans(raw, [("locality", 0, 5), ("locality", 6, 10)]))
    assert bio_from_piece_tags(tags) == ["B-locality", "I-locality"]


def test_paint_spans_paints_exactly_the_half_open_spans():
    assert paint_spans("abcdef", [("x", 1, 3), ("y", 4, 6), ("z", 2, 2)]) == [None, "x", "x", None, "y", "y"]
    assert paint_spans("abc", [("x", 0, 3), ("y", 1, 2)]) == ["x", "y", "x"]  # later spans overwrite
