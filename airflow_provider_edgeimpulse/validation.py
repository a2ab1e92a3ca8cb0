"""
Checks for user-given arguments (operators at execute time on the rendered values, the hook, sample filters).

A ground-floor module: it imports nothing of the package, so every layer may use it.

Templates render to strings ("3", "['a', 'b']", "true") unless the DAG renders native objects, so every
check accepts both the Python value and its rendered text. Each error names the parameter and the value.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
from collections.abc import Collection
from typing import Any

# The provider's own limit on a sample label (see label_text); percent-encoded it stays far below 8 KiB headers.
MAX_LABEL_CHARS = 256
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _literal(text: str) -> Any:
    """A rendered list/dict: JSON first, then a Python literal (what ``{{ [1, 2] }}`` renders to)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def optional_int(name: str, value: Any, *, minimum: int | None = None) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    return required_int(name, value, minimum=minimum)


def required_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    if number is None:
        raise ValueError(f"{name} must be an integer, got {shown(value)}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {shown(value)}")
    return number


def optional_str(name: str, value: Any, *, choices: Collection[str] | None = None) -> str | None:
    if value is None:
        return None
    return required_str(name, value, choices=choices)


def required_str(name: str, value: Any, *, choices: Collection[str] | None = None) -> str:
    if not isinstance(value, str):
        # Name the type: a bytes value prints much like a string and would leave the reader puzzled.
        kind = "" if value is None else f"{type(value).__name__} "
        raise ValueError(f"{name} must be a non-empty string, got {kind}{shown(value)}")
    if not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {shown(value)}")
    text = value.strip()
    if choices is not None and text not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {shown(value)}")
    return text


def shown(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error names a huge value without repeating all of it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


def label_text(name: str, value: Any) -> str:
    """
    A sample label: non-empty text that is valid UTF-8 and at most ``MAX_LABEL_CHARS`` long.

    Checked before anything is sent: ``bytes`` would be sent as their escaped form, text with lone surrogates
    (a file name decoded with ``surrogateescape``) cannot be encoded at all, and an overlong label ends up in
    an HTTP header (``x-label``, percent-encoded) that proxies refuse past a few KiB.
    """
    text = required_str(name, value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{name} {shown(text)} is not valid UTF-8 text ({err.reason} at position {err.start})"
        ) from None
    if len(text) > MAX_LABEL_CHARS:
        raise ValueError(
            f"{name} is {len(text)} characters long, over the {MAX_LABEL_CHARS} a label may have "
            f"(it starts {text[:40]!r})"
        )
    return text


def optional_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} must be true or false, got {shown(value)}")


def required_bool(name: str, value: Any) -> bool:
    result = optional_bool(name, value)
    if result is None:
        raise ValueError(f"{name} must be true or false, got None")
    return result


def optional_str_list(name: str, value: Any) -> list[str] | None:
    """A list of strings; a single plain string is a list of one."""
    if value is None:
        return None
    if isinstance(value, str):
        # A rendered dict ("{'a': 1}") is a dict where a list was meant, not one oddly named string.
        parsed = _literal(value) if value.strip()[:1] in ("[", "(", "{") else value
        value = [parsed] if isinstance(parsed, str) else parsed
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"{name} must be a list of strings, got {shown(value)}")
    items = list(value)
    if not all(isinstance(item, str) and item for item in items):
        raise ValueError(f"{name} must be a list of non-empty strings, got {shown(value)}")
    return items


def optional_int_list(name: str, value: Any) -> list[int] | None:
    """A list of integers; a single integer (or its text) is a list of one."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _literal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"{name} must be a list of integers, got {shown(value)}")
    try:
        return [required_int(name, item) for item in value]
    except ValueError:
        raise ValueError(f"{name} must be a list of integers, got {shown(value)}") from None


def optional_dict(name: str, value: Any) -> dict[str, Any] | None:
    """A JSON object, given as a dict or as its rendered text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _literal(value) if value.strip()[:1] == "{" else value
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{name} must be a dict (a JSON object), got {shown(value)}")
    return dict(value)


def optional_number(name: str, value: Any, *, minimum: float | None = None) -> float | None:
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or number != number:  # NaN never compares equal to itself
        raise ValueError(f"{name} must be a number, got {shown(value)}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {shown(value)}")
    return number


def optional_fraction(name: str, value: Any) -> float | None:
    """A share between 0 and 1 (an accuracy, an F1 score, an allowed drop), given as a number or its text."""
    number = optional_number(name, value, minimum=0)
    if number is not None and number > 1:
        raise ValueError(f"{name} is a fraction between 0 and 1, got {shown(value)}")
    return number


def positive_seconds(name: str, value: Any, *, text: bool = False) -> float:
    """``value`` as a positive, finite number of seconds; with ``text``, a rendered template's digits too."""
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif text and isinstance(value, str):
        with contextlib.suppress(ValueError):
            seconds = float(value.strip())
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return seconds
