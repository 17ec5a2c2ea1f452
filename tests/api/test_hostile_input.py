"""Workspace input written to reach what it should not: internal hosts in any notation,
paths that leave their volume, keys given twice, numbers out of range; each refused
naming its field (issue 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bosun.api import WorkspaceError, load_workspace, parse_workspace
from bosun.api.validators import (
    check_addresses,
    check_public_host,
    literal_address,
    parse_allowed_hosts,
    parse_uri,
)
from bosun.catalog import PlanError, plan_workspace
from tests.conftest import example_data, workspace_data


@pytest.mark.parametrize(
    ("host", "means"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::ffff:7f00:1]", "127.0.0.1"),
        ("[2002:a9fe:a9fe::]", "169.254.169.254"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("100.64.0.1", "100.64.0.1"),
        ("0", "0.0.0.0"),
    ],
)
def test_internal_addresses_in_other_notations_are_refused(host: str, means: str) -> None:
    assert str(literal_address(host)) == means
    with pytest.raises(ValueError, match="loopback, private, link-local or metadata"):
        check_public_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "kubernetes.default",
        "kubernetes",
        "my-service.my-namespace.svc",
        "api.my-namespace.svc.cluster.local",
        "metadata.google.internal",
        "ip-10-0-0-1.ec2.internal",
        "printer.local",
        "app.localhost",
    ],
)
def test_cluster_and_cloud_internal_names_are_refused(host: str) -> None:
    with pytest.raises(ValueError, match="only resolves inside"):
        check_public_host(host)


@pytest.mark.parametrize("host", ["huggingface.co", "8.8.8.8", "123.example.com", "1e100.net"])
def test_public_hosts_still_pass(host: str) -> None:
    check_public_host(host)


def test_a_named_host_may_be_allowed() -> None:
    check_public_host("mirror.svc", allowed=frozenset({"mirror.svc"}))


def test_the_opt_in_comes_from_the_caller_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pure core never reads BOSUN_ALLOW_HOSTS: the edge that validates passes it."""
    data = workspace_data(
        inference=None,
        tuning={
            "preset": {"name": "qwen2.5-0.5b-instruct"},
            "input": {"uris": ["http://mirror.team.svc/chats.jsonl"]},
            "output": {"uri": "pvc://adapters/out"},
        },
    )
    monkeypatch.setenv("BOSUN_ALLOW_HOSTS", "mirror.team.svc")
    with pytest.raises(WorkspaceError, match=r"spec\.tuning\.input\.uris\[0\]: .*only resolves"):
        parse_workspace(data)
    ws = parse_workspace(data, allowed_hosts=parse_allowed_hosts(" Mirror.Team.svc. ,other"))
    assert ws.web_sources() == [("spec.tuning.input.uris[0]", "mirror.team.svc")]


def test_resolved_addresses_are_checked_like_literal_ones() -> None:
    check_addresses("data.example.com", ["93.184.215.14", "2606:2800:21f:cb07::1"])
    with pytest.raises(ValueError, match=r"data\.example\.com resolves to 10\.0\.0\.7"):
        check_addresses("data.example.com", ["93.184.215.14", "10.0.0.7"])
    with pytest.raises(ValueError, match=r"resolves to 169\.254\.169\.254"):
        check_addresses("x.example.com", ["::ffff:169.254.169.254"])
    check_addresses("Data.Example.com.", ["10.0.0.7"], frozenset({"data.example.com"}))


@pytest.mark.parametrize(
    "uri",
    [
        "pvc://models/../secrets",
        "pvc://models/a/../../etc",
        "pvc://models/./x",
        "hf://org/..",
        "file:///data/../etc/passwd",
    ],
)
def test_paths_that_leave_their_volume_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match=r"'\.' and '\.\.' are not allowed"):
        parse_uri(uri, ("pvc", "hf", "file"))


def test_a_workspace_with_such_a_path_names_the_field() -> None:
    data = workspace_data(inference={"model": {"uri": "pvc://models/../../etc"}})
    with pytest.raises(WorkspaceError, match=r"spec\.inference\.model\.uri"):
        parse_workspace(data)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "w.yaml"
    file.write_text(
        "apiVersion: bosun.dev/v1alpha1\nkind: Workspace\nmetadata: {name: x}\n"
        "spec:\n  inference: {preset: {name: phi-4}}\n"
        "spec:\n  inference: {preset: {name: llama-3.1-8b-instruct}}\n",
        encoding="utf-8",
    )
    with pytest.raises(WorkspaceError, match="line 6, column 1: the key 'spec' appears twice"):
        load_workspace(file)


@pytest.mark.parametrize(
    ("resource", "field", "message"),
    [
        ({"cpu": "2", "memory": "-5Gi"}, "spec.resource.memory", "not more than zero"),
        ({"cpu": "2", "memory": "0"}, "spec.resource.memory", "not more than zero"),
        ({"cpu": "2", "memory": "900Pi"}, "spec.resource.memory", "more than any node has"),
        ({"cpu": "-2"}, "spec.resource.cpu", "not more than zero"),
        ({"cpu": "100000"}, "spec.resource.cpu", "more than any node has"),
    ],
)
def test_resources_are_in_range(resource: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(WorkspaceError) as info:
        parse_workspace(workspace_data(resource=resource))
    assert f"{field}: " in str(info.value) and message in str(info.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"maxNumSeqs": -4}, "spec.inference.config.maxNumSeqs: -4 is not a whole number"),
        ({"maxNumSeqs": 0}, "spec.inference.config.maxNumSeqs: 0 is not a whole number"),
        (
            {"max_num_batched_tokens": "lots"},
            "spec.inference.config.max_num_batched_tokens: 'lots' is not a whole number",
        ),
        ({"maxNumBatchedTokens": True}, "maxNumBatchedTokens: True is not a whole number"),
        ({"maxNumBatchedTokens": 2**40}, "from 1 to 1048576"),
        ({"maxNumSeqs": 2.5}, "maxNumSeqs: 2.5 is not a whole number"),
    ],
)
def test_engine_settings_are_in_range(config: dict[str, Any], message: str) -> None:
    ws = parse_workspace(workspace_data(inference={"preset": {"name": "phi-4"}, "config": config}))
    with pytest.raises(PlanError, match=message.replace(".", r"\.").replace("(", r"\(")):
        plan_workspace(ws)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"batchSize": -1}, "spec.tuning.config.batchSize: -1 is not a whole number"),
        ({"maxSeqLength": "long"}, "spec.tuning.config.maxSeqLength: 'long' is not a whole number"),
        ({"batchSize": 4097}, "spec.tuning.config.batchSize: 4097 is not a whole number from 1"),
        ({"maxSeqLength": 2**20 + 1}, "maxSeqLength: 1048577 is not a whole number from 1"),
        # A tuning job's engine settings are named under spec.tuning.config.
        ({"maxNumSeqs": 0}, "spec.tuning.config.maxNumSeqs: 0 is not a whole number"),
    ],
)
def test_trainer_settings_are_in_range(config: dict[str, Any], message: str) -> None:
    data = example_data("06-")
    data["spec"]["tuning"]["config"] = config
    with pytest.raises(PlanError, match=message.replace(".", r"\.")):
        plan_workspace(parse_workspace(data))


@pytest.mark.parametrize(
    ("section", "config"),
    [
        # The edges of each range are accepted.
        ("inference", {"maxNumSeqs": 1, "maxNumBatchedTokens": 2**20}),
        ("inference", {"maxNumSeqs": 2**16}),
        ("tuning", {"batchSize": 4096, "maxSeqLength": 2**20}),
        ("tuning", {"batchSize": 1, "maxSeqLength": 1}),
    ],
)
def test_settings_at_the_edges_of_their_ranges_are_taken(
    section: str, config: dict[str, Any]
) -> None:
    if section == "inference":
        data = workspace_data(inference={"preset": {"name": "phi-4"}, "config": config})
    else:
        data = example_data("06-")
        data["spec"]["tuning"]["config"] = config
    plan_workspace(parse_workspace(data))


@pytest.mark.parametrize("config", [{"maxNumSeqs": 2**16 + 1}, {"maxNumBatchedTokens": 2**20 + 1}])
def test_engine_settings_past_their_range_are_refused(config: dict[str, Any]) -> None:
    ws = parse_workspace(workspace_data(inference={"preset": {"name": "phi-4"}, "config": config}))
    with pytest.raises(PlanError, match="is not a whole number from 1 to"):
        plan_workspace(ws)
