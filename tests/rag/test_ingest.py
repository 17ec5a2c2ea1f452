"""Documents read by their structure and cut where a reader would: headings kept as each
chunk's path, code blocks whole, every chunk within the budget; what is not a readable
document refused, naming it."""

from __future__ import annotations

import pytest

from bosun.rag.ingest import (
    Block,
    DocumentError,
    approximate_tokens,
    blocks_of,
    chunk,
    content_hash,
    kind_of,
)

MARKDOWN = b"""# Bosun

Bosun runs models on Kubernetes.

## Install

Run this:

```console
make run
make test
```

- first item
- second item

## Serving

The server speaks OpenAI's API. It streams tokens.
"""


def words(text: str) -> int:
    return len(text.split())


def test_markdown_is_read_by_its_headings_with_code_blocks_whole() -> None:
    blocks = blocks_of(MARKDOWN, "readme.md", "markdown")
    assert blocks == [
        Block(("Bosun",), "Bosun runs models on Kubernetes."),
        Block(("Bosun", "Install"), "Run this:"),
        Block(("Bosun", "Install"), "```console\nmake run\nmake test\n```", code=True),
        Block(("Bosun", "Install"), "- first item\n- second item"),
        Block(("Bosun", "Serving"), "The server speaks OpenAI's API. It streams tokens."),
    ]
    chunks = chunk(blocks, words, budget=50)
    assert [(c.heading, c.text.split("\n")[0]) for c in chunks] == [
        ("Bosun", "Bosun runs models on Kubernetes."),
        ("Bosun > Install", "Run this:"),
        ("Bosun > Serving", "The server speaks OpenAI's API. It streams tokens."),
    ]  # a new heading starts a new chunk, however much room is left


def test_html_is_read_without_its_scripts_and_menus() -> None:
    html = b"""<html><head><style>p{}</style></head><body><nav>Home | Docs</nav>
    <h1>Guide</h1><p>First <b>bold</b> words.</p><h2>Code</h2><pre>def f():\n    return 1</pre>
    <ul><li>one <p>inside</p></li><li>two</li></ul><script>alert(1)</script>
    <footer>(c) us</footer></body></html>"""
    assert blocks_of(html, "guide.html", "html") == [
        Block(("Guide",), "First bold words."),
        Block(("Guide", "Code"), "def f():\n    return 1", code=True),
        Block(("Guide", "Code"), "one inside"),
        Block(("Guide", "Code"), "two"),
    ]


def pdf_with(text: str) -> bytes:
    """A one-page PDF showing ``text`` (the smallest well-formed file: offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


def test_a_pdf_is_read_page_by_page() -> None:
    blocks = blocks_of(pdf_with("Refunds take five days."), "policy.pdf", "pdf")
    assert blocks == [Block(("page 1",), "Refunds take five days.")]


@pytest.mark.parametrize(
    ("data", "name", "kind", "words_"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "logo.png", "text", "a binary file, not text"),
        (b"  \n\n \t", "blank.txt", "text", "an empty document"),
        (b"# Title only\n", "empty.md", "markdown", None),
        (b"caf\xe9", "latin1.txt", "text", "not UTF-8 text (byte 3)"),
        (b"%PDF-1.4 this is not really a pdf", "broken.pdf", "pdf", "not a readable PDF"),
        (b"<html><body><script>x()</script></body></html>", "blank.html", "html", "empty"),
    ],
)
def test_what_is_not_a_readable_document_is_refused_by_name(
    data: bytes, name: str, kind: str, words_: str | None
) -> None:
    with pytest.raises(DocumentError) as refused:
        blocks_of(data, name, kind)
    assert str(refused.value).startswith(f"{name}: ")
    if words_:
        assert words_ in str(refused.value)


def test_every_chunk_keeps_to_the_budget_and_long_blocks_are_cut_where_they_end() -> None:
    sentences = " ".join(f"Sentence number {i} says something." for i in range(40))
    code = "\n".join(f"line_{i} = {i}" for i in range(60))
    blocks = [Block(("A",), sentences), Block(("A",), f"```\n{code}\n```", code=True)]
    chunks = chunk(blocks, words, budget=30)
    assert all(words(c.text) <= 30 for c in chunks)
    prose = [c for c in chunks if "Sentence" in c.text]
    assert all(c.text.endswith("something.") for c in prose)  # cut at sentence ends
    code_lines = [line for c in chunks if "line_" in c.text for line in c.text.split("\n")]
    assert [line for line in code_lines if line.startswith("line_")] == code.split("\n")
    assert "".join(c.text for c in prose).replace(" ", "") == sentences.replace(" ", "")
    one_long_word_run = Block((), "word " * 500)
    assert all(words(c.text) <= 30 for c in chunk([one_long_word_run], words, budget=30))


def test_types_and_content_hashes() -> None:
    assert kind_of("notes.MD") == "markdown" and kind_of("a.htm") == "html"
    assert kind_of("a.bin", "application/pdf") == "pdf" and kind_of("README") == "text"
    assert kind_of("x", "text/html; charset=utf-8") == "html"
    assert content_hash("Hello  world\n") == content_hash("Hello world")
    assert content_hash("Hello world") != content_hash("Hello World")
    assert approximate_tokens("") == 1


def test_a_line_without_sentence_ends_is_cut_to_fit_however_tokens_are_counted() -> None:
    def dense(text: str) -> int:  # numbers cost more tokens than words do
        return len(text) // 2 + 2

    table = "| " + " | ".join(f"{i * 7919} ms" for i in range(400)) + " |"
    chunks = chunk([Block(("Figures",), table)], dense, budget=50)
    assert len(chunks) > 10 and all(dense(c.text) <= 50 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == table.split()


def test_a_markdown_table_is_read_row_by_row_under_its_header() -> None:
    text = b"# Limits\n\n| check | refuses |\n|---|:--|\n| body size | 413 |\n| no key | 401 |\n"
    assert blocks_of(text, "limits.md", "markdown") == [
        Block(("Limits",), "| check | refuses |\n| body size | 413 |"),
        Block(("Limits",), "| check | refuses |\n| no key | 401 |"),
    ]
