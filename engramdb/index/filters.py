"""Metadata filters for ``recall(where=...)`` and ``list(where=...)``.

A filter is a dict from metadata key to a condition. A plain value means
equality; a dict of operators compares::

    {"topic": "travel"}                          # equality
    {"priority": {"$gte": 2}, "lang": {"$in": ["en", "fr"]}}
    {"$or": [{"topic": "travel"}, {"pinned": True}]}

Operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $contains`` and the
combinators ``$and $or $not``. Keys may be dotted paths into nested dicts
(``"user.name"``). A comparison with a missing key or an incomparable type is
false, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engramdb.errors import ValidationError

__all__ = ["OPERATORS", "compile_filter"]

_MISSING = object()


def _cmp(fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def op(value: Any, arg: Any) -> bool:
        if value is _MISSING or value is None or isinstance(value, bool) != isinstance(arg, bool):
            return False
        try:
            return bool(fn(value, arg))
        except TypeError:
            return False

    return op


def _contains(value: Any, arg: Any) -> bool:
    if isinstance(value, str) and isinstance(arg, str):
        return arg in value
    return isinstance(value, list) and arg in value


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda v, a: v is not _MISSING and v == a,
    "$ne": lambda v, a: v is _MISSING or v != a,
    "$gt": _cmp(lambda v, a: v > a),
    "$gte": _cmp(lambda v, a: v >= a),
    "$lt": _cmp(lambda v, a: v < a),
    "$lte": _cmp(lambda v, a: v <= a),
    "$in": lambda v, a: v is not _MISSING and v in a,
    "$nin": lambda v, a: v is _MISSING or v not in a,
    "$exists": lambda v, a: (v is not _MISSING) == bool(a),
    "$contains": _contains,
}

Predicate = Callable[[Mapping[str, Any]], bool]


def _get(meta: Mapping[str, Any], path: str) -> Any:
    node: Any = meta
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def compile_filter(spec: Mapping[str, Any] | None) -> Predicate | None:
    """Compile a ``where`` filter into a predicate over a metadata dict.

    Raises:
        ValidationError: for an unknown operator or a malformed condition.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ValidationError(
            f"where {spec!r:.80} must be a dict such as {{'topic': 'travel'}} or "
            "{'score': {'$gt': 2}}"
        )
    parts: list[Predicate] = []
    for key, cond in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise ValidationError(f"{key} takes a non-empty list of filters, got {cond!r:.80}")
            subs = [compile_filter(c) for c in cond]
            preds = [p for p in subs if p is not None]
            parts.append(_all(preds) if key == "$and" else _any(preds))
        elif key == "$not":
            sub = compile_filter(cond)
            if sub is not None:
                parts.append(_not(sub))
        elif key.startswith("$"):
            raise ValidationError(
                f"filter operator {key!r} is not known at the top level; use $and, $or or $not"
            )
        elif isinstance(cond, Mapping) and any(str(k).startswith("$") for k in cond):
            for op, arg in cond.items():
                fn = OPERATORS.get(op)
                if fn is None:
                    raise ValidationError(
                        f"filter operator {op!r} on {key!r} is not known; use one of "
                        f"{', '.join(sorted(OPERATORS))}"
                    )
                if op in ("$in", "$nin") and not isinstance(arg, list | tuple | set):
                    raise ValidationError(f"{op} on {key!r} takes a list, got {arg!r:.80}")
                parts.append(_compare(key, fn, tuple(arg) if op in ("$in", "$nin") else arg))
        else:
            parts.append(_compare(key, OPERATORS["$eq"], cond))
    return _all(parts)


def _all(preds: list[Predicate]) -> Predicate:
    return lambda meta: all(p(meta) for p in preds)


def _any(preds: list[Predicate]) -> Predicate:
    return lambda meta: any(p(meta) for p in preds)


def _not(pred: Predicate) -> Predicate:
    return lambda meta: not pred(meta)


def _compare(key: str, op: Callable[[Any, Any], bool], arg: Any) -> Predicate:
    return lambda meta: op(_get(meta, key), arg)
