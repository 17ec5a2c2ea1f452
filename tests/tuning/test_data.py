"""Training data: every bad row is reported by file and line (or Parquet row) with what
is wrong, before any training; encoding labels the assistant's tokens only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bosun.tuning.data import IGNORE, DataError, encode, load_examples, resolve_inputs

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}


def jsonl(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a row is an object, not list"),
        ('{"text": "hello"}', "needs 'messages' or 'prompt' and 'completion' (it has: text)"),
        ('{"messages": []}', "'messages' must be a non-empty list"),
        ('{"messages": ["hi"]}', "messages[0] is not an object"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', "messages[0].role is 'bot'"),
        ('{"messages": [{"role": "user", "content": 3}]}', "messages[0].content must be a string"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "no assistant message"),
        ('{"prompt": "x"}', "'completion' must be a non-empty string"),
        ('{"prompt": "", "completion": "y"}', "'prompt' must be a non-empty string"),
    ],
)
def test_a_bad_row_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    data = jsonl(tmp_path / "train.jsonl", json.dumps(GOOD), "", line)
    with pytest.raises(DataError) as caught:
        load_examples([data])
    assert str(caught.value).startswith(f"{data}:3: ")
    assert message in str(caught.value)


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(DataError, match=re.escape("latin1.jsonl: not UTF-8 text")):
        load_examples([tmp_path / "latin1.jsonl"])
    with pytest.raises(DataError, match=re.escape("empty.jsonl: no rows")):
        load_examples([jsonl(tmp_path / "empty.jsonl")])
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=re.escape("broken.parquet: not a readable Parquet file")):
        load_examples([tmp_path / "broken.parquet"])


def test_inputs_are_paths_uris_and_directories(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or directory"):
        resolve_inputs([str(tmp_path / "missing.jsonl")], tmp_path)
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=re.escape("notes.txt: not a .jsonl or .parquet file")):
        resolve_inputs([str(tmp_path / "notes.txt")], tmp_path)
    with pytest.raises(DataError, match="hf:// inputs are not read by bosun tune yet"):
        resolve_inputs(["hf://datasets/x/y"], tmp_path)
    with pytest.raises(DataError, match=re.escape("no .jsonl or .parquet files in this directory")):
        resolve_inputs([str(tmp_path)], tmp_path)
    a = jsonl(tmp_path / "a.jsonl", json.dumps(GOOD))
    nested = tmp_path / "more"
    nested.mkdir()
    b = jsonl(nested / "b.jsonl", json.dumps(GOOD))
    assert resolve_inputs([str(tmp_path)], tmp_path) == [a, b]
    assert resolve_inputs([f"file://{a}"], tmp_path) == [a]


def test_parquet_rows_are_read_and_named_by_row(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow")
    import pyarrow as pa

    table = pa.table({"prompt": ["2+2?", "3+3?"], "completion": ["4", ""]})
    pq.write_table(table, tmp_path / "rows.parquet")
    with pytest.raises(DataError, match=r"rows.parquet row 2: 'completion' must be"):
        load_examples([tmp_path / "rows.parquet"])
    pq.write_table(pa.table({"prompt": ["2+2?"], "completion": ["4"]}), tmp_path / "ok.parquet")
    [(where, chat)] = load_examples([tmp_path / "ok.parquet"])
    assert where.endswith("ok.parquet row 1")
    assert chat == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


class Template:
    """A ChatML tokenizer with one token per character, enough to check labelling."""

    chat_template = "chatml"
    eos_token_id = 0

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> list[int]:
        text = "".join(f"<{m['role']}>{m['content']}|" for m in messages)
        if add_generation_prompt:
            text += "<assistant>"
        return [ord(c) for c in text]


def test_only_the_assistant_turns_are_labelled() -> None:
    chat = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "bye"},
        {"role": "assistant", "content": "ciao"},
    ]
    item = encode(Template(), chat, max_len=1000)
    learned = "".join(chr(t) if t != IGNORE else " " for t in item.labels).split()
    assert learned == ["yo|", "ciao|"]  # each answer and its end-of-turn marker
    assert item.trained == len("yo|") + len("ciao|")
    assert len(encode(Template(), chat, max_len=10).input_ids) == 10
