"""Where the vector selectors of a PromQL expression are, read from its text.

Enough of PromQL's lexical structure for the boards' own expressions: strings, range
brackets, function calls, grouping label lists (``by (le)``) and keywords are told
apart from metric names and ``{...}`` matchers. Not a parser: it knows no precedence,
only which function call a selector is directly an argument of.
"""
from __future__ import annotations

from dataclasses import dataclass

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile"}
# Followed by a label list in parentheses (group_left/right: optionally).
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


@dataclass(frozen=True)
class Selector:
    name: str              # the metric name; "" for a bare {__name__=~"..."}
    matchers: str          # the text between the braces ("" without braces)
    start: int             # where the selector starts in the expression
    close: int | None      # index of its closing "}", None without braces
    end: int               # just past the name or the "}"
    window: str | None     # the range that follows it, "5m" of x[5m]; None for none
    function: str | None   # the call it is directly an argument of, "rate" of rate(x[5m])


def _skip_string(expr: str, i: int) -> int:
    """Index just past the string literal starting at ``expr[i]``."""
    quote, i = expr[i], i + 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if expr[i] == "\\" and quote != "`" else 1
    return i + 1


def _skip_to(expr: str, i: int, closing: str) -> int:
    """Index of ``closing`` at or after ``i``, strings skipped (len(expr) when missing)."""
    while i < len(expr) and expr[i] != closing:
        i = _skip_string(expr, i) if expr[i] in "\"'`" else i + 1
    return i


def _next(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c in "_:"


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of ``expr``, left to right."""
    found: list[Selector] = []
    calls: list[str | None] = []   # one entry per open parenthesis: the function or None
    pending: str | None = None     # a function name waiting for its "("
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            i = _skip_string(expr, i)
        elif c == "[":
            i = _skip_to(expr, i, "]") + 1
        elif c == "(":
            calls.append(pending)
            pending, i = None, i + 1
        elif c == ")":
            if calls:
                calls.pop()
            i += 1
        elif c == "{":
            found.append(_selector(expr, "", i, i, calls))
            i = found[-1].end
        elif c.isdigit() or c == ".":
            while i < n and (_is_name_char(expr[i]) or expr[i] == "."):
                i += 1   # numbers and durations: 0.95, 1e9, 5m
        elif c.isalpha() or c in "_:":
            start = i
            while i < n and _is_name_char(expr[i]):
                i += 1
            word, after = expr[start:i], _next(expr, i)
            lowered = word.lower()
            if lowered in GROUPING:
                if after < n and expr[after] == "(":
                    i = _skip_to(expr, after, ")") + 1
            elif after < n and expr[after] == "(":
                pending = word                 # a function or an aggregation
            elif lowered in AGGREGATIONS or lowered in KEYWORDS:
                pass                           # sum by (le) (...), or, offset, NaN
            else:
                found.append(_selector(expr, word, start, after, calls))
                i = found[-1].end
        else:
            i += 1
    return found


def _selector(expr: str, name: str, start: int, after: int, calls: list) -> Selector:
    close = None
    end = start + len(name)
    if after < len(expr) and expr[after] == "{":
        close = _skip_to(expr, after + 1, "}")
        end = close + 1
    matchers = expr[after + 1:close] if close is not None else ""
    window = None
    bracket = _next(expr, end)
    if bracket < len(expr) and expr[bracket] == "[":
        window = expr[bracket + 1:_skip_to(expr, bracket, "]")].strip()
    return Selector(name, matchers, start, close, end, window, calls[-1] if calls else None)


def with_matchers(expr: str, matchers: str) -> str:
    """``expr`` with ``matchers`` (e.g. ``a="b", c=~"d"``) added to every selector.

    A selector that already carries them is left as it is, so applying twice is
    applying once.
    """
    out = expr
    for sel in reversed(selectors(expr)):
        if matchers in sel.matchers:
            continue
        if sel.close is None:
            out = out[:sel.end] + "{" + matchers + "}" + out[sel.end:]
            continue
        inside = sel.matchers.rstrip()
        at = sel.close - len(sel.matchers) + len(inside)
        separator = "" if not inside.strip() else (" " if inside.endswith(",") else ", ")
        out = out[:at] + separator + matchers + out[at:]
    return out
