"""Documents into chunks: read by their structure, cut where a reader would.

A document is read into blocks (a paragraph, a list, a table, a code block), each under
the path of headings it sits in: Markdown through markdown-it-py, HTML through
BeautifulSoup, PDF through pypdf (pages of paragraphs), plain text by blank lines.
Chunks gather the blocks of one section up to a token budget; a new heading starts a
new chunk, and a code block is never cut unless it alone is over the budget (then at line
ends). What a chunk's heading path says is embedded with its text.

Each function here is pure: bytes in, chunks out; fetching files and URLs is the
service's.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from bosun.rag.store import Chunk

__all__ = [
    "KINDS",
    "Block",
    "DocumentError",
    "blocks_of",
    "chunk",
    "content_hash",
    "kind_of",
]

# What a document may be, by its name's suffix or its content type.
KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}
CONTENT_TYPES = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "text/plain": "text",
}
TokenCount = Callable[[str], int]


class DocumentError(ValueError):
    """A document that cannot be read as text: what is wrong with it."""


@dataclass(frozen=True)
class Block:
    headings: tuple[str, ...]
    text: str
    code: bool = False


def kind_of(name: str, content_type: str | None = None) -> str:
    """markdown, html, pdf or text, from the content type or the name's suffix; a suffix
    it does not know is read as text if it decodes as such."""
    if content_type:
        found = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if found:
            return found
    return KINDS.get(PurePosixPath(name).suffix.lower(), "text")


def content_hash(text: str) -> str:
    """What makes two documents the same: their text, whitespace and Unicode form aside."""
    normal = " ".join(unicodedata.normalize("NFC", text).split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def _decoded(data: bytes, name: str) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError(
            f"{name}: a binary file, not text (supported: Markdown, HTML, PDF, plain text)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{name}: not UTF-8 text (byte {exc.start})") from None


def blocks_of(data: bytes, name: str, kind: str) -> list[Block]:
    """The blocks of a document of ``kind``; DocumentError when it holds no text."""
    if kind == "pdf":
        blocks = _pdf(data, name)
    elif kind == "html":
        blocks = _html(_decoded(data, name))
    elif kind == "markdown":
        blocks = _markdown(_decoded(data, name))
    else:
        blocks = _paragraphs(_decoded(data, name), ())
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise DocumentError(f"{name}: an empty document (no text in it)")
    return blocks


def _paragraphs(text: str, headings: tuple[str, ...]) -> list[Block]:
    return [Block(headings, p.strip()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _markdown(text: str) -> list[Block]:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").enable("table")
    lines = text.splitlines()
    tokens = parser.parse(text)
    path: list[tuple[int, str]] = []
    blocks: list[Block] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == "heading_open":
            level = int(token.tag[1:])
            title = tokens[i + 1].content.strip()
            path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
            i += 3
            continue
        if token.level == 0 and token.map and token.nesting in (0, 1):
            start, end = token.map
            code = token.type in ("fence", "code_block")
            here = tuple(t for _, t in path)
            if token.type == "table_open":
                # One block a row, under the header: a row is found by what it says,
                # not lost in a table about everything.
                header, *rows = [r for r in lines[start:end] if r.strip()]
                body = [r for r in rows if not re.fullmatch(r"[\s|:-]+", r)]
                blocks += [Block(here, f"{header}\n{row}") for row in body]
            else:
                blocks.append(Block(here, "\n".join(lines[start:end]).strip(), code))
            if token.nesting == 1:  # skip to this block's close: the next one at level 0
                i += 1
                while i < len(tokens) and not (tokens[i].level == 0 and tokens[i].nesting == -1):
                    i += 1
        i += 1
    return blocks


def _html(text: str) -> list[Block]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        hidden.decompose()
    path: list[tuple[int, str]] = []
    blocks: list[Block] = []
    whole = ["p", "pre", "li", "td", "th", "blockquote", "dd", "dt"]
    for element in (soup.body or soup).find_all(["h1", "h2", "h3", "h4", "h5", "h6", *whole]):
        if element.find_parent(whole):
            continue  # inside a block already taken whole
        if element.name[0] == "h" and element.name[1:].isdigit():
            level = int(element.name[1:])
            title = element.get_text(" ", strip=True)
            path = [(lv, t) for lv, t in path if lv < level] + [(level, title)]
            continue
        code = element.name == "pre"
        content = element.get_text("" if code else " ", strip=not code)
        if code:
            content = content.strip("\n")
        blocks.append(Block(tuple(t for _, t in path), content, code))
    if not blocks and soup.get_text(strip=True):
        blocks = _paragraphs(soup.get_text("\n"), ())
    return blocks


def _pdf(data: bytes, name: str) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise DocumentError(f"{name}: not a readable PDF ({exc})") from None
    blocks: list[Block] = []
    for number, page in enumerate(pages, start=1):
        blocks += _paragraphs(page, (f"page {number}",))
    return blocks


def approximate_tokens(text: str) -> int:
    """A token count without a tokenizer: about 4 characters a token, as for English."""
    return max(1, len(text) // 4)


def chunk(
    blocks: list[Block], count: TokenCount = approximate_tokens, budget: int = 200
) -> list[Chunk]:
    """Chunks of at most ``budget`` tokens (as ``count`` counts them), one section's
    blocks each; a block over the budget is cut (code at line ends, prose at sentence
    ends, then words)."""
    chunks: list[Chunk] = []
    current: list[str] = []
    headings: tuple[str, ...] = ()
    used = 0

    def flush() -> None:
        nonlocal current, used
        if current:
            chunks.append(Chunk(" > ".join(headings), "\n\n".join(current)))
        current, used = [], 0

    for block in blocks:
        if block.headings != headings:
            flush()
            headings = block.headings
        for piece in _pieces(block, count, budget):
            size = count(piece)
            if current and used + size > budget:
                flush()
            current.append(piece)
            used += size
    flush()
    return chunks


def _pieces(block: Block, count: TokenCount, budget: int) -> list[str]:
    if count(block.text) <= budget:
        return [block.text]
    if block.code:
        units = block.text.split("\n")
        joiner = "\n"
    else:
        units = re.split(r"(?<=[.!?])\s+", block.text)
        joiner = " "
    pieces: list[str] = []
    current: list[str] = []
    for unit in units:
        units_of_words = _by_words(unit, count, budget) if count(unit) > budget else [unit]
        for part in units_of_words:
            if current and count(joiner.join([*current, part])) > budget:
                pieces.append(joiner.join(current))
                current = []
            current.append(part)
    if current:
        pieces.append(joiner.join(current))
    return pieces


def _by_words(text: str, count: TokenCount, budget: int) -> list[str]:
    """One sentence or line over the budget, cut between words: each piece the most
    words that fit (found by bisection; a single word over the budget stands alone)."""
    words = text.split()
    pieces: list[str] = []
    start = 0
    while start < len(words):
        low, high = start + 1, len(words)
        while low < high:  # the largest end whose words fit
            middle = (low + high + 1) // 2
            if count(" ".join(words[start:middle])) <= budget:
                low = middle
            else:
                high = middle - 1
        pieces.append(" ".join(words[start:low]))
        start = low
    return pieces
