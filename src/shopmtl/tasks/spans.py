"""Spans and tag sequences: BIO / BIOES (and BILOU) tags ↔ typed spans, the transitions a scheme allows, and
span-level precision / recall / F1 per type and micro over all types.

A span is (type, start, end) over token positions, end exclusive. Decoding is lenient, as conlleval is: an I- (or
E-) tag that does not continue a span of its own type starts a new one, so a model's invalid sequence still
decodes to spans and is scored on them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Span = tuple[str, int, int]

_BEGIN, _INSIDE, _END, _SINGLE = "B", "I", "E", "S"
_ALIASES = {"B": _BEGIN, "I": _INSIDE, "E": _END, "L": _END, "S": _SINGLE, "U": _SINGLE}
SCHEMES = {"bio": (_BEGIN, _INSIDE), "bioes": (_BEGIN, _INSIDE, _END, _SINGLE)}


def split_tag(tag: str) -> tuple[str, str | None]:
    """'B-HPPX' → ('B', 'HPPX'); 'O' → ('O', None); BILOU's L and U read as E and S. Raises ValueError on a tag
    that is neither O nor <prefix>-<type>."""
    tag = str(tag).strip()
    if tag in ("O", ""):
        return "O", None
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix.upper() not in _ALIASES or not kind:
        raise ValueError(f"tag {tag!r} is neither `O` nor B-/I-/E-/S- followed by a type")
    return _ALIASES[prefix.upper()], kind


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Typed spans of a tag sequence in BIO, BIOES or BILOU."""
    spans: list[Span] = []
    kind: str | None = None
    start = 0

    def close(end: int) -> None:
        nonlocal kind
        if kind is not None:
            spans.append((kind, start, end))
        kind = None

    for i, tag in enumerate(tags):
        prefix, t = split_tag(tag)
        if prefix == "O":
            close(i)
            continue
        if prefix in (_BEGIN, _SINGLE) or t != kind:  # a new span (also for I-/E- that continue nothing)
            close(i)
            kind, start = t, i
        if prefix in (_END, _SINGLE):
            close(i + 1)
    close(len(tags))
    return spans


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str = "bioes") -> list[str]:
    """Tags of `length` tokens for `spans` (spans past the end are cut; a span overlapping an earlier one is
    dropped, since one tag per token cannot hold both)."""
    tags = ["O"] * length
    for kind, start, end in sorted(spans, key=lambda s: (s[1], s[2])):
        end = min(end, length)
        if start >= end or any(t != "O" for t in tags[start:end]):
            continue
        if scheme == "bioes" and end - start == 1:
            tags[start] = f"S-{kind}"
            continue
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
        if scheme == "bioes":
            tags[end - 1] = f"E-{kind}"
    return tags


def scheme_tags(types: Sequence[str], scheme: str) -> list[str]:
    """Every tag of a scheme over `types`: O first, then per type its prefixes."""
    return ["O"] + [f"{p}-{t}" for t in types for p in SCHEMES[scheme]]


def allowed_transitions(tags: Sequence[str], scheme: str) -> tuple[list[list[bool]], list[bool], list[bool]]:
    """(allowed[i][j]: tag j may follow tag i, may start a sequence, may end one) for well-formed sequences."""
    parsed = [split_tag(t) for t in tags]

    def opens(p: str) -> bool:  # the tag opens a span that must continue
        return p == _BEGIN or (p == _INSIDE and scheme == "bioes")

    def follows(a: tuple[str, str | None], b: tuple[str, str | None]) -> bool:
        (pa, ta), (pb, tb) = a, b
        if pb in (_INSIDE, _END):  # continues a span: only after an open span of its type
            return (pa == _BEGIN or pa == _INSIDE) and ta == tb
        return not (scheme == "bioes" and opens(pa))  # O, B, S: only where no span is left open

    allowed = [[follows(a, b) for b in parsed] for a in parsed]
    start = [p not in (_INSIDE, _END) for p, _ in parsed]
    end = [not (scheme == "bioes" and opens(p)) for p, _ in parsed]
    return allowed, start, end


def span_scores(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]],
                types: Sequence[str] | None = None) -> dict[str, float]:
    """Exact-match span precision, recall and F1, micro over all types (`span_*`) and per type
    (`f1_<type>`, `precision_<type>`, `recall_<type>`, `support_<type>`)."""
    counts: dict[str, list[int]] = {t: [0, 0, 0] for t in types or []}  # type → [true pos, predicted, gold]
    for g_row, p_row in zip(gold, pred, strict=True):
        g_set, p_set = set(g_row), set(p_row)
        for kind, *_ in g_set:
            counts.setdefault(kind, [0, 0, 0])[2] += 1
        for span in p_set:
            c = counts.setdefault(span[0], [0, 0, 0])
            c[1] += 1
            c[0] += span in g_set

    def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
        p = tp / n_pred if n_pred else 0.0
        r = tp / n_gold if n_gold else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    p, r, f = prf(*total)
    out = {"span_f1": f, "span_precision": p, "span_recall": r}
    for kind in sorted(counts):
        p, r, f = prf(*counts[kind])
        out.update({f"f1_{kind}": f, f"precision_{kind}": p, f"recall_{kind}": r,
                    f"support_{kind}": float(counts[kind][2])})
    return out
