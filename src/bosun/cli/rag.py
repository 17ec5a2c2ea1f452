"""``bosun rag``: the RAG engine's service, and indexing files into it from here
(docs/rag.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from bosun.cli.output import fail, log_to_stderr, progress_bar

if TYPE_CHECKING:  # the engine is imported on use: `bosun --help` stays fast
    from bosun.rag.embedding import EngineEmbedder

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


def _data(data: Path | None) -> Path:
    if data is not None:
        return data
    from bosun.local.state import home

    return home() / "rag"


def _embedder(model: str) -> EngineEmbedder:
    from bosun.cli.prepare import prepare_model
    from bosun.engine.client import EngineError
    from bosun.rag.embedding import EngineEmbedder

    prepare_model(model)
    try:
        return EngineEmbedder(model)
    except EngineError as exc:
        fail(f"--embedding-model: {exc}")


@rag_app.command()
def serve(
    data: Data = None,
    embedding_model: Model = EMBEDDING_MODEL,
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

    embedder = _embedder(embedding_model)
    root = _data(data)
    if api_key is not None and not api_key.strip():
        fail("--api-key (or $BOSUN_API_KEY) is empty: give a token, or leave it unset")
    settings = RagSettings(
        root,
        generation_url,
        generation_model,
        max_document_bytes=max_document_bytes,
        api_key=api_key,
    )
    log_to_stderr("bosun.rag", log_level)
    typer.echo(f"bosun rag: http://{host}:{port}/v1, indexes in {root}")
    app = build_rag(settings, embedder, start=embedder.start)
    uvicorn.run(app, host=host, port=port, log_level=log_level, http=guarded_h11())


@rag_app.command()
def add(
    index: Annotated[str, typer.Argument(help="The index (made if it does not exist).")],
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to index.")],
    data: Data = None,
    embedding_model: Model = EMBEDDING_MODEL,
) -> None:
    """Index files and directories here (Markdown, HTML, PDF, text), with a progress bar:
    what a large set of documents wants before `bosun rag serve` answers from it."""
    from bosun.rag.ingest import KINDS
    from bosun.rag.library import Library, LibraryError, NewDocument

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KINDS)
            if not found:
                fail(f"{path}: no Markdown, HTML, PDF or text files in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            fail(f"{path}: no such file or directory")
    embedder = _embedder(embedding_model)

    async def run() -> None:
        await embedder.start()
        library = Library(_data(data), embedder)
        try:
            if index not in library.names():
                library.create(index)
            documents = [NewDocument(f.read_bytes(), str(f), id=str(f)) for f in files]
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


def register(app: typer.Typer) -> None:
    app.add_typer(rag_app, name="rag")
