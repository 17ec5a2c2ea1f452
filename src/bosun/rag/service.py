"""`bosun rag`: the RAG engine's HTTP service.

With ``--api-key``, every route but ``/health`` needs ``Authorization: Bearer KEY``.

- ``POST /v1/indexes`` ``{"name"}``, ``GET /v1/indexes``, ``DELETE /v1/indexes/{name}``.
- ``POST /v1/indexes/{name}/documents`` ``{"documents": [{"text" | "content_base64",
  "name", "id", "content_type", "metadata"}]}``; ``GET`` lists them (``offset``,
  ``limit``); ``PUT .../documents/{id}`` replaces one, ``DELETE`` removes it.
- ``POST /v1/indexes/{name}/query`` ``{"query", "top_k", "filter"}``: the closest chunks
  with their scores, headings and metadata.
- ``POST /v1/chat/completions`` with ``"index"`` (and ``top_k``, ``filter``): the last
  user message retrieves passages; the generation server (``--generation-url``, an
  OpenAI-compatible server: a Workspace or the gateway) answers from them; the answer
  cites them (``[1]``) in its text and lists them in ``sources``; ``stream`` streams it,
  the sources in the first chunk.

Errors are OpenAI's shape, with the field or parameter named.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bosun.rag.library import Embedder, Library, LibraryError, NewDocument
from bosun.rag.local_store import LocalStores
from bosun.rag.store import Hit, Stores, StoreUnavailableError
from bosun.web import TooLargeError, WebError, fetch

__all__ = ["RagSettings", "build_rag"]

MAX_DOCUMENT_BYTES = 16 * 2**20
CITATION = re.compile(r"\[(\d+)\]")
SYSTEM = (
    "Answer the question using only the numbered passages below. Cite the passages you "
    "use by their numbers in brackets, like [1]. If they do not hold the answer, say so.\n\n"
)


@dataclass(frozen=True)
class RagSettings:
    root: Path
    generation_url: str | None = None  # an OpenAI-compatible base URL, ending in /v1
    generation_model: str | None = None  # default: the first model that server lists
    generation_key: str | None = None
    timeout: float = 300.0
    api_key: str | None = None  # required on every route but /health when set
    max_document_bytes: int = MAX_DOCUMENT_BYTES
    chunk_tokens: int | None = None  # tokens per chunk at most (default: the model's limit)
    # The name clients (and the gateway) pass as ``model`` for answers from the indexes;
    # /v1/models lists it. A request naming it is answered by generation_model.
    served_name: str = "rag"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IndexBody(_Body):
    name: str


class DocumentBody(_Body):
    text: str | None = None
    content_base64: str | None = None
    url: str | None = Field(default=None, max_length=2048)  # fetched by the service
    name: str | None = Field(default=None, max_length=1024)
    id: str | None = Field(default=None, min_length=1, max_length=512)
    content_type: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_content(self) -> DocumentBody:
        given = [x for x in (self.text, self.content_base64, self.url) if x is not None]
        if len(given) != 1:
            raise ValueError("give the document as text, content_base64 or url (one of them)")
        return self


class DocumentsBody(_Body):
    documents: list[DocumentBody] = Field(min_length=1, max_length=10_000)


class QueryBody(_Body):
    query: str = Field(min_length=1, max_length=20_000)
    top_k: int = Field(default=5, ge=1, le=100)
    filter: dict[str, Any] | None = None


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


async def _document(
    body: DocumentBody, where: str, limit: int, default_id: str | None = None
) -> NewDocument:
    if body.url is not None:
        # Public addresses only, checked where the connection is made (bosun.web): the
        # service never fetches from inside the cluster or the machine it runs on.
        try:
            fetched = await asyncio.to_thread(fetch, body.url, limit)
        except WebError as exc:
            status = 413 if isinstance(exc, TooLargeError) else 422
            raise LibraryError(status, f"{where}.url: {exc}") from None
        return NewDocument(
            fetched.data,
            body.name or body.url,
            body.id or default_id or body.url,
            body.content_type or fetched.content_type,
            body.metadata,
        )
    if body.text is not None:
        data = body.text.encode("utf-8")
        name = body.name or body.id or default_id or "document.txt"
    else:
        try:
            data = base64.b64decode(body.content_base64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise LibraryError(422, f"{where}.content_base64: not base64") from None
        name = body.name or body.id or default_id or "document"
    if len(data) > limit:
        raise LibraryError(413, f"{where}: {len(data)} bytes, more than the {limit} allowed")
    return NewDocument(data, name, body.id or default_id, body.content_type, body.metadata)


def _hit(hit: Hit, number: int | None = None) -> dict[str, Any]:
    out = {
        "document": hit.document,
        "chunk": hit.position,
        "score": round(hit.score, 6),
        "heading": hit.heading,
        "text": hit.text,
        "source": hit.source,
        "metadata": hit.metadata,
    }
    return {"n": number, **out} if number is not None else out


def build_rag(
    settings: RagSettings, embedder: Embedder, start: Any = None, stores: Stores | None = None
) -> FastAPI:
    """The service over the indexes ``stores`` keeps (default: directories under
    ``settings.root``); ``start`` (an awaitable factory) runs at startup, before requests
    are answered (loading the embedder)."""
    if stores is None:
        stores = LocalStores(settings.root, embedder.dimensions, embedder.name)
    library = Library(stores, embedder, settings.chunk_tokens)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start is not None:
            await start()
        async with httpx.AsyncClient(timeout=settings.timeout) as client:
            app.state.client = client
            try:
                yield
            finally:
                library.close()

    app = FastAPI(title="Bosun RAG", lifespan=lifespan)
    expected = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    @app.middleware("http")
    async def key(request: Request, call_next: Any) -> Any:
        if expected is not None and request.url.path != "/health":
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                refused = _error(401, "Incorrect API key provided.")
                refused.headers["WWW-Authenticate"] = "Bearer"
                return refused
        return await call_next(request)

    @app.exception_handler(LibraryError)
    async def refused(request: Request, exc: LibraryError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(StoreUnavailableError)
    async def unreachable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        answer = _error(503, f"the vector store: {exc}")
        answer.headers["Retry-After"] = "5"
        return answer

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "body"
        message = str(first["msg"]).removeprefix("Value error, ")
        return _error(422, f"{where}: {message}", param=where)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        """The engine as one model (what the gateway routes by): answers from the indexes."""
        model = {
            "id": settings.served_name,
            "object": "model",
            "owned_by": "bosun",
            "root": settings.generation_model or settings.served_name,
            "parent": None,
            "kind": "rag",
        }
        return {"object": "list", "data": [model]}

    @app.post("/v1/indexes", status_code=201)
    async def create(body: IndexBody) -> dict[str, Any]:
        library.create(body.name)
        return library.summary(body.name)

    @app.get("/v1/indexes")
    async def indexes() -> dict[str, Any]:
        return {"object": "list", "data": [library.summary(n) for n in library.names()]}

    @app.get("/v1/indexes/{name}")
    async def one(name: str) -> dict[str, Any]:
        return library.summary(name)

    @app.delete("/v1/indexes/{name}")
    async def drop(name: str) -> dict[str, Any]:
        await library.delete(name)
        return {"name": name, "deleted": True}

    @app.post("/v1/indexes/{name}/documents")
    async def add(name: str, body: DocumentsBody) -> dict[str, Any]:
        limit = settings.max_document_bytes
        documents = [
            await _document(d, f"documents[{i}]", limit) for i, d in enumerate(body.documents)
        ]
        added = await library.add(name, documents)
        return {
            "object": "list",
            "data": [
                {
                    "id": a.id,
                    "chunks": a.chunks,
                    "duplicate_of": a.duplicate_of,
                    "unchanged": a.unchanged,
                }
                for a in added
            ],
        }

    @app.put("/v1/indexes/{name}/documents/{document_id}")
    async def replace(name: str, document_id: str, body: DocumentBody) -> dict[str, Any]:
        if body.id is not None and body.id != document_id:
            raise LibraryError(422, f"id: {body.id!r} is not the document in the path")
        document = await _document(body, "document", settings.max_document_bytes, document_id)
        (added,) = await library.add(name, [document])
        return {"id": added.id, "chunks": added.chunks, "duplicate_of": added.duplicate_of}

    @app.get("/v1/indexes/{name}/documents")
    async def documents(
        name: str, offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        stored = library.index(name).documents(offset, limit)
        return {
            "object": "list",
            "data": [
                {
                    "id": d.id,
                    "source": d.source,
                    "chunks": d.chunks,
                    "metadata": d.metadata,
                    "hash": d.hash,
                }
                for d in stored
            ],
        }

    @app.delete("/v1/indexes/{name}/documents/{document_id}")
    async def remove(name: str, document_id: str) -> dict[str, Any]:
        await library.remove(name, document_id)
        return {"id": document_id, "deleted": True}

    @app.post("/v1/indexes/{name}/query")
    async def query(name: str, body: QueryBody) -> dict[str, Any]:
        hits = await library.query(name, body.query, body.top_k, body.filter)
        return {"object": "list", "data": [_hit(h) for h in hits]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> JSONResponse | StreamingResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the body is not a JSON object")
        return await _answer(app, settings, library, body)

    return app


def _question(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise LibraryError(422, "messages: give the conversation, ending with the question")
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                return content
            if isinstance(content, list):
                parts = [p.get("text", "") for p in content if isinstance(p, dict)]
                if "".join(parts).strip():
                    return " ".join(parts)
    raise LibraryError(422, "messages: no user message with text to answer")


def _prompt(hits: list[Hit]) -> str:
    passages = []
    for n, hit in enumerate(hits, start=1):
        where = f"{hit.document}" + (f" > {hit.heading}" if hit.heading else "")
        passages.append(f"[{n}] ({where})\n{hit.text}")
    return SYSTEM + "\n\n".join(passages)


def _sources_line(hits: list[Hit]) -> str:
    return "\n\nSources: " + "; ".join(
        f"[{n}] {h.document}" + (f" ({h.heading})" if h.heading else "")
        for n, h in enumerate(hits, start=1)
    )


async def _answer(
    app: FastAPI, settings: RagSettings, library: Library, body: dict[str, Any]
) -> JSONResponse | StreamingResponse:
    if settings.generation_url is None:
        raise LibraryError(503, "no generation server: start bosun rag with --generation-url")
    index = body.pop("index", None)
    if not isinstance(index, str):
        raise LibraryError(422, "index: name the index to answer from")
    top_k = body.pop("top_k", 4)
    if not isinstance(top_k, int) or not 1 <= top_k <= 20:
        raise LibraryError(422, "top_k: a whole number from 1 to 20")
    where = body.pop("filter", None)
    if where is not None and not isinstance(where, dict):
        raise LibraryError(422, "filter: an object of metadata keys and values")
    hits = await library.query(index, _question(body.get("messages")), top_k, where)
    messages = [
        m for m in body["messages"] if not (isinstance(m, dict) and m.get("role") == "system")
    ]
    body["messages"] = (
        [{"role": "system", "content": _prompt(hits)}, *messages] if hits else messages
    )
    client: httpx.AsyncClient = app.state.client
    headers = {"Authorization": f"Bearer {settings.generation_key or 'none'}"}
    if not body.get("model") or body["model"] == settings.served_name:
        body["model"] = settings.generation_model or await _first_model(client, settings, headers)
    sources = [_hit(h, n) for n, h in enumerate(hits, start=1)]
    url = f"{settings.generation_url}/chat/completions"
    if body.get("stream"):
        return StreamingResponse(
            _stream(client, url, body, headers, hits, sources), media_type="text/event-stream"
        )
    try:
        upstream = await client.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise LibraryError(502, f"the generation server: {exc}") from None
    answer = upstream.json() if upstream.content else {}
    if upstream.status_code != 200:
        return JSONResponse(answer, status_code=upstream.status_code)
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        text = message.get("content") or ""
        if hits and not CITATION.search(text):
            message["content"] = text + _sources_line(hits)  # the model cited nothing
    answer["sources"] = sources
    return JSONResponse(answer)


async def _first_model(
    client: httpx.AsyncClient, settings: RagSettings, headers: dict[str, str]
) -> str:
    try:
        listed = (await client.get(f"{settings.generation_url}/models", headers=headers)).json()
        return str(listed["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        raise LibraryError(
            502, f"{settings.generation_url}: lists no model to answer with"
        ) from None


async def _stream(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    hits: list[Hit],
    sources: list[dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The generation server's stream, passed on event by event: the first chunk carries
    ``sources``, and where the answer cited nothing, a last chunk lists them."""
    first, cited = True, False
    last: dict[str, Any] | None = None
    try:
        async with client.stream("POST", url, json=body, headers=headers) as upstream:
            if upstream.status_code != 200:
                refusal = (await upstream.aread()).decode(errors="replace")
                yield f"data: {refusal}\n\n".encode()
                return
            async for line in upstream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if first:
                    chunk["sources"] = sources
                    first = False
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or ""
                    cited = cited or bool(CITATION.search(text))
                if chunk.get("choices"):
                    last = chunk
                yield f"data: {json.dumps(chunk)}\n\n".encode()
    except httpx.HTTPError as exc:
        error = {"error": {"message": f"the generation server: {exc}", "type": "server_error"}}
        yield f"data: {json.dumps(error)}\n\n".encode()
        return
    if hits and not cited and last is not None:
        tail = {
            **{k: v for k, v in last.items() if k not in ("choices", "usage", "sources")},
            "choices": [
                {"index": 0, "delta": {"content": _sources_line(hits)}, "finish_reason": None}
            ],
        }
        yield f"data: {json.dumps(tail)}\n\n".encode()
    yield b"data: [DONE]\n\n"
