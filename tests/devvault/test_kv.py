"""KV version 2: versions, CAS, metadata, soft delete, destroy, create vs update.

Source: DOC api-docs/secret/kv/kv-v2.mdx and CODE vault-plugin-secrets-kv, as
summarised in docs/facts/vault.md §3; create/update by existence §1.3; hvac map §5.
"""

from __future__ import annotations

from collections.abc import Callable

import hvac
import pytest

from tests.devvault.conftest import RawHTTP


def _kv(client: hvac.Client):  # type: ignore[no-untyped-def]
    return client.secrets.kv.v2


def test_write_and_read_versions(root: hvac.Client, mount: str) -> None:
    first = _kv(root).create_or_update_secret("app/db", {"user": "a"}, mount_point=mount)
    assert first["data"]["version"] == 1
    assert first["data"]["deletion_time"] == "" and first["data"]["destroyed"] is False
    _kv(root).create_or_update_secret("app/db", {"user": "b"}, mount_point=mount)
    latest = _kv(root).read_secret_version(
        "app/db", mount_point=mount, raise_on_deleted_version=True
    )["data"]
    assert latest["data"] == {"user": "b"} and latest["metadata"]["version"] == 2
    v1 = _kv(root).read_secret_version(
        "app/db", version=1, mount_point=mount, raise_on_deleted_version=True
    )["data"]
    assert v1["data"] == {"user": "a"}


def test_missing_key_and_version_are_404(root: hvac.Client, mount: str, http: RawHTTP) -> None:
    resp = http("GET", f"{mount}/data/nothing")
    assert resp.status_code == 404 and resp.json() == {"errors": []}
    _kv(root).create_or_update_secret("k", {"a": "1"}, mount_point=mount)
    assert http("GET", f"{mount}/data/k?version=7").status_code == 404


def test_missing_data_is_400(http: RawHTTP, mount: str) -> None:
    resp = http("POST", f"{mount}/data/k", json={"options": {}})
    assert resp.status_code == 400
    assert resp.json()["errors"] == ["no data provided"]


# -- CAS (CODE validateCheckAndSetOption) ----------------------------------------------
def test_cas_mismatch_is_400_with_vault_text(root: hvac.Client, mount: str) -> None:
    _kv(root).create_or_update_secret("c", {"a": "1"}, cas=0, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest) as err:
        _kv(root).create_or_update_secret("c", {"a": "2"}, cas=0, mount_point=mount)
    assert "check-and-set parameter did not match the current version" in str(err.value)
    assert (
        _kv(root).create_or_update_secret("c", {"a": "2"}, cas=1, mount_point=mount)["data"][
            "version"
        ]
        == 2
    )


def test_cas_required_by_metadata(root: hvac.Client, mount: str) -> None:
    _kv(root).update_metadata("r", cas_required=True, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter required"):
        _kv(root).create_or_update_secret("r", {"a": "1"}, mount_point=mount)
    _kv(root).create_or_update_secret("r", {"a": "1"}, cas=0, mount_point=mount)


def test_cas_required_by_mount_config(root: hvac.Client, mount: str) -> None:
    _kv(root).configure(cas_required=True, mount_point=mount)
    assert _kv(root).read_configuration(mount_point=mount)["data"]["cas_required"] is True
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set parameter required"):
        _kv(root).create_or_update_secret("m", {"a": "1"}, mount_point=mount)


# -- soft delete, undelete, destroy --------------------------------------------------
def test_soft_deleted_version_is_404_with_metadata_body(
    root: hvac.Client, mount: str, http: RawHTTP
) -> None:
    _kv(root).create_or_update_secret("s", {"a": "1"}, mount_point=mount)
    assert _kv(root).delete_latest_version_of_secret("s", mount_point=mount).status_code == 204
    resp = http("GET", f"{mount}/data/s")
    assert resp.status_code == 404
    body = resp.json()["data"]
    assert body["data"] is None
    assert body["metadata"]["version"] == 1 and body["metadata"]["deletion_time"] != ""
    # hvac returns that body when asked not to raise on deleted versions.
    read = _kv(root).read_secret_version("s", mount_point=mount, raise_on_deleted_version=False)
    assert read["data"]["metadata"]["deletion_time"] != ""
    _kv(root).undelete_secret_versions("s", versions=[1], mount_point=mount)
    assert _kv(root).read_secret_version("s", mount_point=mount, raise_on_deleted_version=True)[
        "data"
    ]["data"] == {"a": "1"}


def test_delete_and_destroy_versions(root: hvac.Client, mount: str, http: RawHTTP) -> None:
    for value in ("1", "2", "3"):
        _kv(root).create_or_update_secret("d", {"v": value}, mount_point=mount)
    _kv(root).delete_secret_versions("d", versions=[1], mount_point=mount)
    _kv(root).destroy_secret_versions("d", versions=[2], mount_point=mount)
    versions = _kv(root).read_secret_metadata("d", mount_point=mount)["data"]["versions"]
    assert versions["1"]["deletion_time"] != "" and versions["1"]["destroyed"] is False
    assert versions["2"]["destroyed"] is True
    assert versions["3"]["deletion_time"] == "" and versions["3"]["destroyed"] is False
    destroyed = http("GET", f"{mount}/data/d?version=2")
    assert destroyed.status_code == 404 and destroyed.json()["data"]["metadata"]["destroyed"]
    _kv(root).undelete_secret_versions("d", versions=[2], mount_point=mount)
    assert http("GET", f"{mount}/data/d?version=2").status_code == 404  # destroyed stays


def test_delete_without_versions_is_400(http: RawHTTP, mount: str) -> None:
    resp = http("POST", f"{mount}/delete/x", json={})
    assert resp.status_code == 400
    assert resp.json()["errors"] == ["No version number provided"]


# -- metadata -------------------------------------------------------------------------
def test_metadata_fields_and_custom_metadata(root: hvac.Client, mount: str) -> None:
    _kv(root).create_or_update_secret("meta", {"a": "1"}, mount_point=mount)
    _kv(root).update_metadata(
        "meta", max_versions=3, custom_metadata={"owner": "ops"}, mount_point=mount
    )
    meta = _kv(root).read_secret_metadata("meta", mount_point=mount)["data"]
    for key in (
        "cas_required",
        "created_time",
        "current_version",
        "delete_version_after",
        "max_versions",
        "oldest_version",
        "updated_time",
        "custom_metadata",
        "versions",
    ):
        assert key in meta, key
    assert meta["current_version"] == 1 and meta["max_versions"] == 3
    assert meta["custom_metadata"] == {"owner": "ops"}
    assert meta["delete_version_after"] == "0s"
    # custom_metadata is also returned on data reads (docs/facts/vault.md §3).
    read = _kv(root).read_secret_version("meta", mount_point=mount, raise_on_deleted_version=True)
    assert read["data"]["metadata"]["custom_metadata"] == {"owner": "ops"}


def test_custom_metadata_validation(root: hvac.Client, mount: str) -> None:
    with pytest.raises(hvac.exceptions.InvalidRequest, match="custom_metadata validation failed"):
        _kv(root).update_metadata("v", custom_metadata={"k": "x" * 600}, mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="custom_metadata validation failed"):
        _kv(root).update_metadata(
            "v", custom_metadata={f"k{i}": "v" for i in range(65)}, mount_point=mount
        )


def test_max_versions_prunes_oldest(root: hvac.Client, mount: str) -> None:
    _kv(root).update_metadata("p", max_versions=2, mount_point=mount)
    for value in ("1", "2", "3"):
        _kv(root).create_or_update_secret("p", {"v": value}, mount_point=mount)
    meta = _kv(root).read_secret_metadata("p", mount_point=mount)["data"]
    assert sorted(meta["versions"]) == ["2", "3"]
    assert meta["oldest_version"] == 2 and meta["current_version"] == 3


def test_list_and_delete_metadata(root: hvac.Client, mount: str) -> None:
    for path in ("site/a/binance", "site/a/okx", "site/b/okx"):
        _kv(root).create_or_update_secret(path, {"x": "y"}, mount_point=mount)
    assert _kv(root).list_secrets("site", mount_point=mount)["data"]["keys"] == ["a/", "b/"]
    assert _kv(root).list_secrets("site/a", mount_point=mount)["data"]["keys"] == [
        "binance",
        "okx",
    ]
    _kv(root).delete_metadata_and_all_versions("site/b/okx", mount_point=mount)
    assert _kv(root).list_secrets("site", mount_point=mount)["data"]["keys"] == ["a/"]
    with pytest.raises(hvac.exceptions.InvalidPath):
        _kv(root).read_secret_metadata("site/b/okx", mount_point=mount)
    with pytest.raises(hvac.exceptions.InvalidPath):
        _kv(root).list_secrets("nothing-here", mount_point=mount)


def test_patch_with_merge_patch_content_type(root: hvac.Client, mount: str, http: RawHTTP) -> None:
    _kv(root).create_or_update_secret("pt", {"a": "1", "b": "2"}, mount_point=mount)
    resp = http(
        "PATCH",
        f"{mount}/data/pt",
        json={"data": {"b": None, "c": "3"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert resp.status_code == 200 and resp.json()["data"]["version"] == 2
    read = _kv(root).read_secret_version("pt", mount_point=mount, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"a": "1", "c": "3"}
    missing = http(
        "PATCH",
        f"{mount}/data/none",
        json={"data": {"a": "1"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert missing.status_code == 404


MERGE = {"Content-Type": "application/merge-patch+json"}


def test_metadata_patch_merges_custom_metadata(
    root: hvac.Client, mount: str, http: RawHTTP
) -> None:
    """PATCH metadata/:path (docs/facts/vault.md §3): named keys set, a null removes one,
    the others and the settings stay; no new version; a missing key 404; the patch is
    validated like a write; a plain JSON content type 415."""
    _kv(root).create_or_update_secret("pm", {"a": "1"}, mount_point=mount)
    _kv(root).update_metadata(
        "pm", max_versions=4, custom_metadata={"keep": "1", "drop": "2"}, mount_point=mount
    )
    resp = http(
        "PATCH",
        f"{mount}/metadata/pm",
        json={"custom_metadata": {"drop": None, "new": "3", "absent": None}},
        headers=MERGE,
    )
    assert resp.status_code == 204
    meta = _kv(root).read_secret_metadata("pm", mount_point=mount)["data"]
    assert meta["custom_metadata"] == {"keep": "1", "new": "3"}
    assert meta["max_versions"] == 4 and meta["current_version"] == 1
    missing = http(
        "PATCH", f"{mount}/metadata/none", json={"custom_metadata": {"a": "1"}}, headers=MERGE
    )
    assert missing.status_code == 404
    bad = http("PATCH", f"{mount}/metadata/pm", json={"custom_metadata": {"k": ""}}, headers=MERGE)
    assert bad.status_code == 400
    assert "custom_metadata validation failed" in bad.json()["errors"][0]
    plain = http("PATCH", f"{mount}/metadata/pm", json={"custom_metadata": {"k": "v"}})
    assert plain.status_code == 415
    # A null for the whole map unsets the field (inference, docs/facts/vault.md §3).
    resp = http("PATCH", f"{mount}/metadata/pm", json={"custom_metadata": None}, headers=MERGE)
    assert resp.status_code == 204
    meta = _kv(root).read_secret_metadata("pm", mount_point=mount)["data"]
    assert not meta["custom_metadata"] and meta["max_versions"] == 4


def test_metadata_patch_needs_the_patch_capability(
    root: hvac.Client, mount: str, make_policy: Callable, client_for: Callable, http: RawHTTP
) -> None:
    _kv(root).create_or_update_secret("pc", {"a": "1"}, mount_point=mount)
    body = {"custom_metadata": {"k": "v"}}
    writer = make_policy(f'path "{mount}/metadata/*" {{ capabilities = ["create", "update"] }}')
    patcher = make_policy(f'path "{mount}/metadata/*" {{ capabilities = ["patch"] }}')
    no_patch = root.auth.token.create(policies=[writer], ttl="5m")["auth"]["client_token"]
    with_patch = root.auth.token.create(policies=[patcher], ttl="5m")["auth"]["client_token"]
    refused = http("PATCH", f"{mount}/metadata/pc", json=body, headers=MERGE, token=no_patch)
    assert refused.status_code == 403
    done = http("PATCH", f"{mount}/metadata/pc", json=body, headers=MERGE, token=with_patch)
    assert done.status_code == 204
    meta = _kv(root).read_secret_metadata("pc", mount_point=mount)["data"]
    assert meta["custom_metadata"] == {"k": "v"}


# -- ACL: create vs update by existence, list on metadata (§1.3, §3) ---------------------
def test_create_only_policy_writes_new_keys_but_cannot_update(
    root: hvac.Client, mount: str, make_policy: Callable, client_for: Callable
) -> None:
    policy = make_policy(f'path "{mount}/data/*" {{ capabilities = ["create"] }}')
    client = client_for(root.auth.token.create(policies=[policy], ttl="5m")["auth"]["client_token"])
    _kv(client).create_or_update_secret("new", {"a": "1"}, mount_point=mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        _kv(client).create_or_update_secret("new", {"a": "2"}, mount_point=mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        _kv(client).read_secret_version("new", mount_point=mount, raise_on_deleted_version=True)


def test_update_only_policy_cannot_create(
    root: hvac.Client, mount: str, make_policy: Callable, client_for: Callable
) -> None:
    _kv(root).create_or_update_secret("exists", {"a": "1"}, mount_point=mount)
    policy = make_policy(f'path "{mount}/data/*" {{ capabilities = ["update"] }}')
    client = client_for(root.auth.token.create(policies=[policy], ttl="5m")["auth"]["client_token"])
    _kv(client).create_or_update_secret("exists", {"a": "2"}, mount_point=mount)
    with pytest.raises(hvac.exceptions.Forbidden):
        _kv(client).create_or_update_secret("fresh", {"a": "1"}, mount_point=mount)


def test_listing_needs_list_on_metadata(
    root: hvac.Client, mount: str, make_policy: Callable, client_for: Callable
) -> None:
    _kv(root).create_or_update_secret("l/x", {"a": "1"}, mount_point=mount)
    reader = make_policy(f'path "{mount}/data/*" {{ capabilities = ["read", "list"] }}')
    lister = make_policy(f'path "{mount}/metadata/*" {{ capabilities = ["list"] }}')
    c1 = client_for(root.auth.token.create(policies=[reader], ttl="5m")["auth"]["client_token"])
    c2 = client_for(root.auth.token.create(policies=[lister], ttl="5m")["auth"]["client_token"])
    with pytest.raises(hvac.exceptions.Forbidden):
        _kv(c1).list_secrets("l", mount_point=mount)
    assert _kv(c2).list_secrets("l", mount_point=mount)["data"]["keys"] == ["x"]
