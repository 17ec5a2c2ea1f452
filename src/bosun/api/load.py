"""Reading Workspaces and RAGEngines from YAML or dicts, with errors that name the field
path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bosun.api.errors import Problem, WorkspaceError
from bosun.api.rag import RAG_KIND, RAGEngine
from bosun.api.workspace import API_VERSION, KIND, Workspace

__all__ = [
    "load_resource",
    "load_workspace",
    "load_yaml_documents",
    "parse_resource",
    "parse_workspace",
    "preset_workspace",
    "problems_from",
    "read_workspace",
]

_MESSAGES = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part or part in ("function-after", "function-before"):
            continue  # pydantic's internal validator names, not fields
        else:
            out += f".{part}" if out else part
    return out


def problems_from(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        message = _MESSAGES.get(item["type"], item["msg"])
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        problems.append(Problem(_path(item["loc"]), message))
    return problems


def parse_workspace(
    data: Any, source: str = "<input>", allowed_hosts: frozenset[str] = frozenset()
) -> Workspace:
    """Validate one decoded document as a Workspace. ``allowed_hosts``: internal hosts the
    user opted in to as sources (``BOSUN_ALLOW_HOSTS``, read by the caller)."""
    parsed = _parse(data, source, allowed_hosts, (KIND,))
    assert isinstance(parsed, Workspace)
    return parsed


def parse_resource(
    data: Any, source: str = "<input>", allowed_hosts: frozenset[str] = frozenset()
) -> Workspace | RAGEngine:
    """Validate one decoded document as whichever Bosun kind it names."""
    return _parse(data, source, allowed_hosts, (KIND, RAG_KIND))


_MODELS: dict[str, type[Workspace] | type[RAGEngine]] = {KIND: Workspace, RAG_KIND: RAGEngine}


def _parse(
    data: Any, source: str, allowed_hosts: frozenset[str], kinds: tuple[str, ...]
) -> Workspace | RAGEngine:
    wanted = " or ".join(kinds)
    if not isinstance(data, dict):
        raise WorkspaceError(
            source, [Problem("", f"expected a YAML mapping (a {wanted})")], kinds[0]
        )
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if kind not in kinds or api_version != API_VERSION:
        raise WorkspaceError(
            source,
            [
                Problem(
                    "apiVersion" if kind in kinds else "kind",
                    f"expected apiVersion: {API_VERSION} and kind: {wanted}, "
                    f"got {api_version!r} and {kind!r}",
                )
            ],
            kind if kind in kinds else kinds[0],
        )
    try:
        return _MODELS[kind].model_validate(data, context={"allowed_hosts": allowed_hosts})
    except ValidationError as exc:
        raise WorkspaceError(source, problems_from(exc), kind) from None


def preset_workspace(preset: str, name: str = "preset") -> Workspace:
    """The smallest Workspace that serves ``preset`` with every default: what `bosun
    models --fits`, the catalog table and the planning benchmark plan."""
    return parse_workspace(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name},
            "spec": {"inference": {"preset": {"name": preset}}},
        }
    )


def load_workspace(path: str | Path, allowed_hosts: frozenset[str] = frozenset()) -> Workspace:
    """Read a Workspace from a YAML or JSON file (one document); ``allowed_hosts`` as in
    :func:`parse_workspace`."""
    return read_workspace(_read(path), str(path), allowed_hosts)


def load_resource(
    path: str | Path, allowed_hosts: frozenset[str] = frozenset()
) -> Workspace | RAGEngine:
    """Read a Workspace or a RAGEngine from a YAML or JSON file (one document)."""
    kinds = (KIND, RAG_KIND)
    document = _document(_read(path), str(path), " or ".join(kinds))
    return _parse(document, str(path), allowed_hosts, kinds)


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkspaceError(
            str(path), [Problem("", f"cannot read the file: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise WorkspaceError(str(path), [Problem("", "the file is not UTF-8 text")]) from None


def read_workspace(
    text: str, source: str = "<input>", allowed_hosts: frozenset[str] = frozenset()
) -> Workspace:
    """Read a Workspace from YAML or JSON text (one document); errors name ``source``."""
    return parse_workspace(_document(text, source), source, allowed_hosts)


def _document(text: str, source: str, what: str = "Workspace") -> Any:
    try:
        documents = [d for d in load_yaml_documents(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise WorkspaceError(source, [Problem("", f"malformed YAML at {where}{problem}")]) from None
    if len(documents) != 1:
        raise WorkspaceError(
            source, [Problem("", f"expected one {what} document, found {len(documents)}")]
        )
    return documents[0]


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """libyaml's safe loader where present, refusing a key given twice in one mapping
    (plain YAML keeps the last, so a second ``spec:`` would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def load_yaml_documents(text: str) -> list[Any]:
    """Decode every YAML document in ``text`` (duplicate keys refused)."""
    return list(yaml.load_all(text, Loader=_StrictLoader))
