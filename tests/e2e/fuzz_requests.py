"""Hypothesis strategies for HTTP requests: arbitrary and almost-valid bodies, headers, sizes, encodings."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

# Header names a fuzzer may set freely (httpx computes Host and Content-Length itself).
_TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_RESERVED = frozenset({"host", "content-length", "transfer-encoding", "connection", "x-functions-key"})
_CHARSETS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252")
GUIDS = st.uuids().map(str)


@dataclass(frozen=True)
class FuzzRequest:
    """One request to send: query, headers and the body bytes (already encoded and compressed)."""

    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints a failing case's draws: a megabyte body would drown the report.
        printer.text(f"FuzzRequest({self.describe()})")

    def describe(self) -> str:
        """A short description for failure messages (no body dump: it may be megabytes)."""
        return f"params={self.params!r} headers={self.headers!r} body[{len(self.body)}]={self.body[:200]!r}"


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON-shaped value (NaN and infinities included: Python's json writes and reads them)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=40),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )


SMALL_JSON = json_values(4)
ANY_JSON = json_values()


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes anything JSON."""
    return st.one_of(value, value, value, SMALL_JSON)


def documents(shape: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A plausible document of the endpoint's shape with some fields dropped, or any JSON at all."""

    def drop_some(doc: Any, data: st.DataObject) -> Any:
        if isinstance(doc, dict) and doc and data.draw(st.booleans()):
            gone = data.draw(st.sets(st.sampled_from(sorted(doc)), max_size=len(doc)))
            return {k: v for k, v in doc.items() if k not in gone}
        return doc

    plausible = st.builds(drop_some, shape, st.data())
    return st.one_of(plausible, plausible, plausible, ANY_JSON)


@st.composite
def _json_bytes(draw: st.DrawFn, document: st.SearchStrategy[Any]) -> tuple[bytes, str | None]:
    """A document written as JSON in some encoding (the charset to announce, if any)."""
    text = json.dumps(draw(document), ensure_ascii=draw(st.booleans()))
    charset = draw(st.sampled_from(_CHARSETS))
    return text.encode(charset, errors="replace"), draw(st.sampled_from((None, charset, "utf-8")))


@st.composite
def _hostile_bytes(draw: st.DrawFn) -> bytes:  # noqa: PLR0911 - one return per kind of hostility
    """Bodies that break naive parsers: deep nesting, huge numbers, long strings, truncation, NULs."""
    depth = draw(st.integers(min_value=1, max_value=100_000))
    kind = draw(st.sampled_from(("array", "object", "number", "string", "truncated", "nul", "padding")))
    match kind:
        case "array":
            return b"[" * depth + b"]" * draw(st.sampled_from((0, depth)))
        case "object":
            return b'{"a":' * depth + b"1" + b"}" * draw(st.sampled_from((0, depth)))
        case "number":
            return b"1" * min(depth, 50_000)
        case "string":
            return b'"' + b"\\u00e9" * min(depth, 20_000) + b'"'
        case "truncated":
            return b'{"value":[{"subscriptionId":"' + b"x" * min(depth, 1_000)
        case "nul":
            return b'{"value":[\x00]}' + b"\x00" * min(depth, 1_000)
        case _:
            # Around the endpoints' size limits (64 KiB, 1 MB, 1 MiB) and above them.
            size = draw(st.sampled_from((65_535, 65_537, 999_999, 1_000_001, 1_048_577, 1_200_000)))
            return b'{"value":[]' + b" " * max(0, size - 12) + b"}"


def bodies(document: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[bytes, str | None]]:
    """Raw bytes, hostile bytes, or a document as JSON in some encoding."""
    return st.one_of(
        st.binary(max_size=512).map(lambda b: (b, None)),
        _hostile_bytes().map(lambda b: (b, None)),
        _json_bytes(document),
        _json_bytes(document),
        _json_bytes(document),
    )


_header_names = st.text(alphabet=_TOKEN, min_size=1, max_size=24).filter(lambda n: n.lower() not in _RESERVED)
# Header values: visible Latin-1 and spaces (HTTP/1.1 allows no CR, LF or NUL, and httpx refuses them).
_header_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=64
).map(str.strip)
_query_text = st.text(max_size=64)


_EXTRA_HEADERS: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}), st.just({}), st.dictionaries(_header_names, _header_values, min_size=1, max_size=4)
)
_PARAMS: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    st.just({}),
    st.dictionaries(st.text(max_size=12).filter(lambda k: k != "code"), _query_text, min_size=1, max_size=3),
)
_ENCODINGS = st.sampled_from((None, None, None, None, "gzip", "deflate", "identity", "br", "bogus"))


def requests(
    document: st.SearchStrategy[Any],
    content_types: tuple[str, ...],
    *,
    extra_headers: Callable[[bytes, st.DrawFn], dict[str, str]] | None = None,
) -> st.SearchStrategy[FuzzRequest]:
    """Requests for one endpoint: a body, a content type (plausible or not), random headers and query.

    Every strategy is built once here: building them per example costs more than drawing from them.
    """
    body_strategy = bodies(document)
    media_strategy = st.one_of(st.sampled_from(content_types), _header_values, st.none())

    @st.composite
    def draw_request(draw: st.DrawFn) -> FuzzRequest:
        body, charset = draw(body_strategy)
        media = draw(media_strategy)
        headers = dict(draw(_EXTRA_HEADERS))
        if media is not None:
            announce = charset is not None and draw(st.booleans())
            headers["Content-Type"] = f"{media}; charset={charset}" if announce else media
        if extra_headers is not None:
            headers.update(extra_headers(body, draw))  # signed over the body as the handler reads it
        encoding = draw(_ENCODINGS)
        if encoding is not None:
            # The host passes bodies through undecoded, as Azure's does: the header is just noise.
            headers["Content-Encoding"] = encoding
            if encoding == "gzip" and draw(st.booleans()):
                body = gzip.compress(body)
            elif encoding == "deflate" and draw(st.booleans()):
                body = zlib.compress(body)
        return FuzzRequest(
            params=dict(draw(_PARAMS)), headers=headers, body=body, chunked=draw(st.booleans())
        )

    return draw_request()
