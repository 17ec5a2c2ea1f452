"""Training data for ``bosun tune``: JSONL or Parquet rows, each either a chat
(``messages``: a list of ``{"role", "content"}``) or a ``prompt``/``completion`` pair.

Every row is checked before any training starts; a bad one is reported by file and line
(JSONL) or row (Parquet) with what is wrong. Encoding renders each chat with the model's
chat template and labels only the assistant's tokens: the loss never trains the model to
write the user's or the system's words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bosun.web import WebError, download

__all__ = ["DataError", "Encoded", "encode", "load_examples", "resolve_inputs"]

ROLES = ("system", "user", "assistant", "tool")
SUFFIXES = (".jsonl", ".json", ".parquet")
IGNORE = -100  # the label of a token the loss skips


class DataError(ValueError):
    """Bad training data: the message names the file and the line or row."""


Message = dict[str, str]


def _file_name(path: str) -> str:
    """The URL path's last segment as a plain file name (never '..', never a path)."""
    name = unquote(path.rstrip("/").rsplit("/", 1)[-1])
    name = name.replace("/", "_").replace("\\", "_")
    return name if name not in ("", ".", "..") else "data.jsonl"


def _download(url: str, target: Path) -> None:
    try:
        download(url, target)
    except WebError as exc:
        raise DataError(str(exc)) from None


def resolve_inputs(inputs: list[str], download_dir: Path) -> list[Path]:
    """Local files for the inputs: paths, ``file://`` URIs, directories (their JSONL and
    Parquet files) and ``http(s)://`` URLs (downloaded into ``download_dir``)."""
    files: list[Path] = []
    for item in inputs:
        if item.startswith(("http://", "https://")):
            name = _file_name(urlsplit(item).path)
            download_dir.mkdir(parents=True, exist_ok=True)
            target = download_dir / name
            _download(item, target)
            files.append(target)
            continue
        if "://" in item and not item.startswith("file://"):
            scheme = item.split("://", 1)[0]
            raise DataError(
                f"{item}: {scheme}:// inputs are not read by bosun tune yet; give a local "
                "path, file://, http(s)://, or a volume"
            )
        path = Path(item.removeprefix("file://")).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"{path}: no .jsonl or .parquet files in this directory")
            files.extend(found)
        elif path.is_file():
            if path.suffix not in SUFFIXES:
                raise DataError(f"{path}: not a .jsonl or .parquet file")
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    return files


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, row) for every row of a file: ``file:line`` or ``file row N``."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{path}: not a readable Parquet file: {exc}") from None
        for i, row in enumerate(table.to_pylist(), start=1):
            yield f"{path} row {i}", row
        return
    with path.open(encoding="utf-8", errors="strict") as f:
        try:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: not valid JSON: {exc.msg}") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None


def _example(where: str, row: Any) -> list[Message]:
    """One row as a chat, or a DataError saying what is wrong with it."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: a row is an object, not {type(row).__name__}")
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise DataError(f"{where}: 'messages' must be a non-empty list")
        chat: list[Message] = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise DataError(f"{where}: messages[{i}] is not an object")
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise DataError(
                    f"{where}: messages[{i}].role is {role!r}, not one of {', '.join(ROLES)}"
                )
            if not isinstance(content, str):
                raise DataError(f"{where}: messages[{i}].content must be a string")
            chat.append({"role": role, "content": content})
        if not any(m["role"] == "assistant" and m["content"] for m in chat):
            raise DataError(f"{where}: no assistant message with content: nothing to learn")
        return chat
    if "prompt" in row or "completion" in row:
        prompt, completion = row.get("prompt"), row.get("completion")
        for key, value in (("prompt", prompt), ("completion", completion)):
            if not isinstance(value, str) or not value:
                raise DataError(f"{where}: '{key}' must be a non-empty string")
        assert isinstance(prompt, str) and isinstance(completion, str)
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
    keys = ", ".join(sorted(row)) or "none"
    raise DataError(
        f"{where}: a row needs 'messages' or 'prompt' and 'completion' (it has: {keys})"
    )


def load_examples(files: list[Path]) -> list[tuple[str, list[Message]]]:
    """(where, chat) for every row of every file, checked; DataError at the first bad one."""
    examples = [(where, _example(where, row)) for path in files for where, row in _rows(path)]
    if not examples:
        raise DataError(f"{', '.join(map(str, files))}: no rows")
    return examples


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE except on the assistant's tokens

    @property
    def trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def _template(tokenizer: Any, messages: list[Message], generation: bool) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=generation)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def encode(tokenizer: Any, chat: list[Message], max_len: int) -> Encoded:
    """The chat as the model sees it, labelled on the assistant's turns only (each turn's
    tokens after the template's assistant header, its end-of-turn marker included), cut
    to ``max_len`` tokens."""
    if not getattr(tokenizer, "chat_template", None):  # the prompt, the answer, EOS
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ids: list[int] = []
        labels: list[int] = []
        for message in chat:
            part = list(tokenizer(message["content"], add_special_tokens=False)["input_ids"])
            if message["role"] == "assistant":
                part += eos
            ids += part
            labels += part if message["role"] == "assistant" else [IGNORE] * len(part)
        return Encoded(ids[:max_len], labels[:max_len])
    ids = _template(tokenizer, chat, generation=False)
    labels = [IGNORE] * len(ids)
    for i, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        start = len(_template(tokenizer, chat[:i], generation=True)) if i else 0
        end = len(_template(tokenizer, chat[: i + 1], generation=False))
        labels[start:end] = ids[start:end]
    return Encoded(ids[:max_len], labels[:max_len])
