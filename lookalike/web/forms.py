"""Request fields of the image endpoints, from the query string or a multipart form, and the
photo: a multipart file field `image`, or the raw body with an image content type."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import UploadFile

from lookalike.web.errors import bad_request

TRUE, FALSE = {"1", "true", "on", "yes"}, {"", "0", "false", "off", "no"}


@dataclass
class Fields:
    """Query parameters overlaid by form fields (a form field wins)."""

    values: dict[str, list[str]] = field(default_factory=dict)
    image: bytes = b""

    def text(self, name: str, default: str = "") -> str:
        return (self.values.get(name) or [default])[-1]

    def words(self, name: str) -> list[str]:
        """A repeated field, each value also comma-separated: ?categories=a,b&categories=c."""
        return [part.strip() for value in self.values.get(name, [])
                for part in value.split(",") if part.strip()]

    def integer(self, name: str, default: int = 0) -> int:
        value = self.text(name).strip()
        try:
            return int(value) if value else default
        except ValueError:
            raise bad_request(f"{name} is {value[:40]!r}; a whole number") from None

    def number(self, name: str, default: float = 0.0) -> float:
        value = self.text(name).strip()
        try:
            return float(value) if value else default
        except ValueError:
            raise bad_request(f"{name} is {value[:40]!r}; a number") from None

    def flag(self, name: str) -> bool:
        value = self.text(name).strip().lower()
        if value not in TRUE | FALSE:
            raise bad_request(f"{name} is {value[:40]!r}; true or false")
        return value in TRUE


def _add(values: dict[str, list[str]], name: str, value: str) -> None:
    values.setdefault(name, []).append(value)


async def read_fields(request: Request, files: tuple[str, ...] = ("image",)) -> Fields:
    values: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        _add(values, name, value)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields = Fields(values)
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=len(files), max_fields=100)
        posted: dict[str, list[str]] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in files:
                    raise bad_request(f"unexpected file field {name!r}; send the photo as 'image'")
                fields.image = await value.read()
            else:
                _add(posted, name, value)
        values.update(posted)
    elif kind.startswith("image/") or kind == "application/octet-stream":
        fields.image = await request.body()
    elif kind and await request.body():
        raise bad_request(f"content type {kind!r}: send the photo as a multipart field 'image' "
                          "or as the body with an image/* content type")
    return fields
