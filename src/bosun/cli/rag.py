"""``bosun rag``: the RAG engine's service, and indexing files into it from here
(docs/rag.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from bosun.cli.output import Format, console, dump, fail, log_to_stderr, progress_bar, warn

if TYPE_CHECKING:  # the engine is imported on use: `bosun --help` stays fast
    from bosun.api.rag import RAGEngine
    from bosun.catalog.embeddings import RagPlan
    from bosun.rag.embedding import EngineEmbedder
    from bosun.rag.library import NewDocument
    from bosun.rag.store import Stores

__all__ = ["register"]

rag_app = typer.Typer(help="Answer from your documents: indexes, documents, retrieval.")
DEFAULT_PORT = 8095
EMBEDDING_MODEL = "all-minilm-l6-v2"

Data = Annotated[
    Path | None,
    typer.Option(help="Where the indexes are kept (default: $BOSUN_HOME/rag)."),
]
Model = Annotated[
    str, typer.Option("--embedding-model", help="The embedding model (a preset or a directory).")
]
QdrantUrl = Annotated[
    str | None,
    typer.Option(
        envvar="BOSUN_QDRANT_URL",
        help="Keep the indexes in this Qdrant server (http://qdrant:6333) instead of --data.",
    ),
]
QdrantPrefix = Annotated[
    str,
    typer.Option(
        envvar="BOSUN_QDRANT_PREFIX",
        help="With --qdrant-url: the collections' name prefix (engines sharing a server differ).",
    ),
]
ChunkTokens = Annotated[
    int | None,
    typer.Option(
        min=16, help="Tokens per chunk at most (default: the model's limit, less the heading's)."
    ),
]


def _data(data: Path | None) -> Path:
    if data is not None:
        return data
    from bosun.local.state import home

    return home() / "rag"


def _stores(
    data: Path | None, embedder: EngineEmbedder, qdrant_url: str | None, prefix: str
) -> Stores:
    """Where the indexes are kept: directories under ``data``, or a Qdrant server (its
    key from $QDRANT_API_KEY)."""
    if qdrant_url is None:
        from bosun.rag.local_store import LocalStores

        return LocalStores(_data(data), embedder.dimensions, embedder.name)
    import os

    from bosun.rag.qdrant_store import QdrantStores

    parts = urlsplit(qdrant_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"--qdrant-url {qdrant_url!r}: write the server's URL, as http://qdrant:6333")
    key = os.environ.get("QDRANT_API_KEY") or None
    return QdrantStores(qdrant_url, embedder.dimensions, embedder.name, prefix=prefix, api_key=key)


def _embedder(model: str, chunk_tokens: int | None = None) -> EngineEmbedder:
    from bosun.catalog.embeddings import HEADING_TOKENS
    from bosun.cli.prepare import prepare_model
    from bosun.engine.client import EngineError
    from bosun.rag.embedding import EngineEmbedder

    prepare_model(model)
    try:
        embedder = EngineEmbedder(model)
    except EngineError as exc:
        fail(f"--embedding-model: {exc}")
    most = embedder.max_tokens - HEADING_TOKENS
    if chunk_tokens is not None and chunk_tokens > most:
        fail(
            f"--chunk-tokens {chunk_tokens}: {model} reads {embedder.max_tokens} tokens, "
            f"{HEADING_TOKENS} of them kept for the heading path: at most {most}"
        )
    return embedder


@rag_app.command()
def serve(
    data: Data = None,
    qdrant_url: QdrantUrl = None,
    qdrant_prefix: QdrantPrefix = "",
    embedding_model: Model = EMBEDDING_MODEL,
    chunk_tokens: ChunkTokens = None,
    generation_url: Annotated[
        str | None,
        typer.Option(
            help="The OpenAI-compatible server that answers (a Workspace, or the gateway: "
            "http://127.0.0.1:8090/v1)."
        ),
    ] = None,
    generation_model: Annotated[
        str | None, typer.Option(help="The model it answers with (default: its first).")
    ] = None,
    served_name: Annotated[
        str,
        typer.Option(
            help="The model name clients and the gateway use for answers from the indexes."
        ),
    ] = "rag",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="BOSUN_API_KEY", help="Require this bearer token on every route but /health."
        ),
    ] = None,
    max_document_bytes: Annotated[
        int, typer.Option(min=1, help="The largest document accepted (16 MiB).")
    ] = 16 * 2**20,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = DEFAULT_PORT,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug.")
    ] = "info",
) -> None:
    """Serve indexes, documents, retrieval and chat with citations over HTTP."""
    if generation_url is not None:
        parts = urlsplit(generation_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            fail(
                f"--generation-url {generation_url!r}: write a server's URL, as http://127.0.0.1:8090/v1"
            )
        generation_url = generation_url.rstrip("/")
        if not generation_url.endswith("/v1"):
            generation_url += "/v1"
    import uvicorn

    from bosun.rag.service import RagSettings, build_rag
    from bosun.serving.connections import guarded_h11

    embedder = _embedder(embedding_model, chunk_tokens)
    root = _data(data)
    stores = _stores(data, embedder, qdrant_url, qdrant_prefix)
    if api_key is not None and not api_key.strip():
        fail("--api-key (or $BOSUN_API_KEY) is empty: give a token, or leave it unset")
    settings = RagSettings(
        root,
        generation_url,
        generation_model,
        max_document_bytes=max_document_bytes,
        api_key=api_key,
        chunk_tokens=chunk_tokens,
        served_name=served_name,
    )
    log_to_stderr("bosun.rag", log_level)
    typer.echo(f"bosun rag: http://{host}:{port}/v1, indexes in {stores.where}")
    app = build_rag(settings, embedder, start=embedder.start, stores=stores)
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=guarded_h11())


@rag_app.command()
def add(
    index: Annotated[str, typer.Argument(help="The index (made if it does not exist).")],
    paths: Annotated[
        list[str], typer.Argument(help="Files, directories or http(s) URLs to index.")
    ],
    data: Data = None,
    qdrant_url: QdrantUrl = None,
    qdrant_prefix: QdrantPrefix = "",
    embedding_model: Model = EMBEDDING_MODEL,
    chunk_tokens: ChunkTokens = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="Send them to a running engine (`bosun up` of a RAGEngine, or `bosun rag "
            "serve`) instead of indexing here, as http://127.0.0.1:8095."
        ),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="BOSUN_API_KEY", help="With --url: the engine's key.")
    ] = None,
) -> None:
    """Index files and directories here (Markdown, HTML, PDF, text), with a progress bar:
    what a large set of documents wants before `bosun rag serve` answers from it."""
    from bosun.rag.ingest import KINDS
    from bosun.rag.library import Library, LibraryError, NewDocument
    from bosun.rag.store import StoreError

    files: list[Path] = []
    web = [p for p in paths if p.startswith(("http://", "https://"))]
    for path in (Path(p) for p in paths if p not in web):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KINDS)
            if not found:
                fail(f"{path}: no Markdown, HTML, PDF or text files in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            fail(f"{path}: no such file or directory")
    if url is not None:
        _send(url, api_key, index, files, web)  # the engine fetches the URLs
        return
    fetched = [_fetched(u) for u in web]  # before the model loads: a bad URL fails fast
    embedder = _embedder(embedding_model, chunk_tokens)

    async def run() -> None:
        await embedder.start()
        library = Library(
            _stores(data, embedder, qdrant_url, qdrant_prefix), embedder, chunk_tokens
        )
        try:
            if index not in library.names():
                library.create(index)
            documents = [NewDocument(f.read_bytes(), str(f), id=str(f)) for f in files]
            documents += fetched
            with progress_bar("embedding") as update:
                added = await library.add(
                    index, documents, lambda done, total: update("chunks", done / total)
                )
        finally:
            library.close()
        new = [a for a in added if not a.duplicate_of and not a.unchanged]
        same = [a for a in added if a.duplicate_of]
        typer.echo(
            f"{index}: {len(new)} document(s) added, {sum(a.chunks for a in new)} chunks"
            + (f"; {len(same)} duplicate(s) of stored ones skipped" if same else "")
        )

    try:
        asyncio.run(run())
    except LibraryError as exc:
        fail(exc.message)
    except StoreError as exc:  # a Qdrant server down: nothing of this call was stored
        fail(f"the vector store: {exc}")


SEND_BYTES = 4 * 2**20  # documents per request to a running engine: up to this much
FETCH_BYTES = 16 * 2**20  # the largest document fetched from a URL (the service's default)


def _fetched(url: str) -> NewDocument:
    """A document from the web: public addresses only (bosun.web)."""
    from bosun.rag.library import NewDocument
    from bosun.web import WebError, fetch

    try:
        page = fetch(url, FETCH_BYTES)
    except WebError as exc:
        fail(str(exc))
    return NewDocument(page.data, url, url, page.content_type)


def _send(
    url: str, api_key: str | None, index: str, files: list[Path], web: Sequence[str] = ()
) -> None:
    """`bosun rag add --url`: the files to a running engine, a few per request, and the
    web URLs for it to fetch (each request is one transaction there: a refused one stores
    nothing of itself, and what earlier requests stored stays)."""
    import base64

    import httpx

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"--url {url!r}: write the engine's URL, as http://127.0.0.1:8095")
    base = url.rstrip("/").removesuffix("/v1") + "/v1"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    requests: list[list[dict[str, str]]] = []
    size = SEND_BYTES
    for f in files:
        if size + f.stat().st_size > SEND_BYTES and (not requests or requests[-1]):
            requests.append([])
            size = 0
        content = base64.b64encode(f.read_bytes()).decode()
        requests[-1].append({"content_base64": content, "name": f.name, "id": str(f)})
        size += f.stat().st_size
    if web:
        requests.append([{"url": u} for u in web])  # the engine fetches them
    total = len(files) + len(web)
    added = chunks = same = done = 0
    with httpx.Client(base_url=base, headers=headers, timeout=600) as client:

        def call(method: str, path: str, body: dict[str, object]) -> httpx.Response:
            try:
                return client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                fail(f"--url {url}: {exc}")

        made = call("POST", "/indexes", {"name": index})
        if made.status_code not in (201, 409):
            fail(f"{index}: {_said(made)}")
        with progress_bar("embedding") as update:
            for documents in requests:
                reply = call("POST", f"/indexes/{index}/documents", {"documents": documents})
                if reply.status_code != 200:
                    stored = f" ({added} document(s) stored before it)" if added else ""
                    fail(f"{index}: {_said(reply)}{stored}")
                for row in reply.json()["data"]:
                    if row["duplicate_of"]:
                        same += 1
                    elif not row["unchanged"]:
                        added, chunks = added + 1, chunks + row["chunks"]
                done += len(documents)
                update("documents", done / total)
    typer.echo(
        f"{index}: {added} document(s) added, {chunks} chunks"
        + (f"; {same} duplicate(s) of stored ones skipped" if same else "")
    )


def _said(reply: object) -> str:
    """What an engine's error reply says (OpenAI's shape), else its status."""
    import httpx

    assert isinstance(reply, httpx.Response)
    try:
        return str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {reply.status_code}"


def sized(rag: RAGEngine) -> RagPlan:
    """The RAGEngine's plan, its warnings said; a bad preset or chunk size fails here."""
    from bosun.api import BosunError
    from bosun.catalog.embeddings import UnknownEmbeddingError, plan_rag

    try:
        plan = plan_rag(rag)
    except UnknownEmbeddingError as exc:
        fail(f"spec.embedding.preset.name: {exc}")
    except BosunError as exc:
        fail(str(exc))
    for message in plan.warnings:
        warn(message)
    return plan


def plan_rag_engine(rag: RAGEngine, output: Format, gpu_options: bool = False) -> None:
    """`bosun plan` of a RAGEngine: what it needs and why."""
    if gpu_options:
        warn(
            "a RAGEngine embeds on CPUs: --accelerator, --instance-type and --cluster do not apply"
        )
    plan = sized(rag)
    if output is not Format.TABLE:
        dump(plan.summary(), output)
        return
    from rich.table import Table

    mib = 2**20
    table = Table(title=f"RAGEngine {rag.name}", title_justify="left", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    spec = plan.embedding
    model = plan.embedding_model
    if spec is not None:
        model += f" ({spec.parameters / 1e6:.1f}M parameters, {spec.dimensions} dimensions, "
        model += f"{spec.max_tokens} tokens)"
    table.add_row("embedding", model)
    table.add_row("chunks", f"at most {plan.chunk_tokens or 'the model limit, less 40'} tokens")
    inference = rag.spec.inference
    table.add_row("answers with", inference.workspace or inference.url or "")
    table.add_row(
        "storage",
        f"{rag.spec.storage.size}: about {plan.chunks_on_disk:,} chunks",
    )
    table.add_row(
        "memory",
        f"{plan.memory_bytes / mib:,.0f} MiB"
        + (" (spec.memory)" if plan.memory_from_spec else "")
        + f" = runtime + weights {plan.weight_bytes / mib:,.0f} MiB + one batch "
        f"{plan.activation_bytes / mib:,.0f} MiB + the graph of {plan.chunks_in_memory:,} chunks "
        f"({plan.graph_bytes_per_chunk} bytes each)",
    )
    table.add_row("cpu", plan.cpu)
    console.print(table)


def render_rag(rag: RAGEngine, namespace: str | None) -> None:
    """`bosun render` of a RAGEngine: its claim, Deployment and Service."""
    from bosun.api.validators import check_dns1123_label
    from bosun.render.pods import RenderOptions
    from bosun.render.rag import render_rag_engine

    if namespace is not None:
        try:
            check_dns1123_label(namespace)
        except ValueError as exc:
            fail(f"--namespace: {exc}")
    dump(render_rag_engine(rag, sized(rag), RenderOptions(namespace=namespace)), Format.YAML)


def register(app: typer.Typer) -> None:
    app.add_typer(rag_app, name="rag")
