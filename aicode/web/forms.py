"""Turning a submitted HTML form into the same request shapes the JSON API validates."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec
from litestar import Request

from aicode.errors import InvalidInputError

__all__ = ["form_values", "parse_form"]

S = TypeVar("S", bound=msgspec.Struct)

_AT_FIELD = re.compile(r"\s*-\s*at `\$\.([A-Za-z_]+)[^`]*`")


async def form_values(request: Request[Any, Any, Any], names: Iterable[str]) -> dict[str, str]:
    """The named fields, trimmed; fields left empty are dropped so the API's defaults apply."""
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in names}
    return {name: value for name, value in values.items() if value}


def parse_form(values: dict[str, Any], shape: type[S]) -> S:
    """`values` as `shape`, converting "3" to 3 where a number is wanted; a message naming the field if not."""
    try:
        return msgspec.convert(values, shape, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        found = _AT_FIELD.search(message)
        if found is None:
            raise InvalidInputError(message) from None
        field = found.group(1).replace("_", " ")
        raise InvalidInputError(f"{field}: {_AT_FIELD.sub('', message)}") from None
