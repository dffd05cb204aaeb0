"""The retention routes on the real app: groups, confirmation of dangerous changes, plan,
holds over several cameras, and the forecast in GET /api/v1/storage."""

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from nvr.api.app import ApiContext, make_app
from nvr.auth.permissions import Role
from nvr.auth.tokens import create_token
from nvr.config import Config, StorageConfig
from nvr.index.evidence import audit_entries
from nvr.retention.sweeper import sweep
from nvr.timeutil import format_rfc3339
from tests.evidence.support import index_call
from tests.index.support import T0_US

from .support import CAMERAS, DAY_US, GROUPS, Store, make_store

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = make_store(tmp_path)
    for seq in range(3):
        opened.add("cam1", seq, size=1000, start_s=seq * 10 * 86_400)  # 10 days apart
        opened.add("cam2", seq, size=1000, start_s=seq * 10 * 86_400)
    opened.clock.now_us = T0_US + 25 * DAY_US
    return opened


async def _client(aiohttp_client: ClientFactory, store: Store) -> TestClient[Any, Any]:
    config = Config(
        storage=StorageConfig(root=store.root), groups=GROUPS, cameras=CAMERAS
    )
    return await aiohttp_client(
        make_app(ApiContext(config, {}, store.index, index_call))
    )


def _auth(store: Store, name: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(store.index, name, role)}"}


async def test_patch_group_shorter_retention_unconfirmed_deletes_nothing(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    admin = _auth(store, "ada", Role.ADMIN)

    refused = await client.patch(
        "/api/v1/groups/general", headers=admin, json={"retention_days": 12}
    )
    body = await refused.json()
    sweep(store.index, store.root, now_us=store.clock)

    assert refused.status == 409
    assert body["applied"] is False
    assert body["would_delete"] == {
        "segments": 2,
        "bytes": 2000,
    }  # ended 25 and 15 days ago
    assert len(store.files()) == 6
    groups = await (await client.get("/api/v1/groups", headers=admin)).json()
    assert {g["name"]: g["retention_days"] for g in groups["groups"]} == {
        "general": 30,
        "key-area": 90,
    }


async def test_patch_group_shorter_retention_confirmed_applies_audited_then_sweeps(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    admin = _auth(store, "ada", Role.ADMIN)

    answer = await client.patch(
        "/api/v1/groups/general",
        headers=admin,
        json={"retention_days": 12, "confirm": True},
    )
    result = sweep(store.index, store.root, now_us=store.clock)

    assert answer.status == 200
    assert (await answer.json())["will_delete"] == {"segments": 2, "bytes": 2000}
    assert result.segments == 2
    change = audit_entries(store.index, action="retention-change")[-1]
    assert change.actor == "ada" and '"confirmed":true' in change.details


async def test_group_routes_viewer_refused_operator_reads_only(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    viewer = _auth(store, "vic", Role.VIEWER)
    operator = _auth(store, "olive", Role.OPERATOR)

    assert (await client.get("/api/v1/groups", headers=viewer)).status == 403
    assert (await client.get("/api/v1/groups", headers=operator)).status == 200
    created = await client.post(
        "/api/v1/groups", headers=operator, json={"name": "lobby", "retention_days": 7}
    )
    assert created.status == 403


async def test_create_group_and_move_camera_needs_confirmation(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    admin = _auth(store, "ada", Role.ADMIN)

    created = await client.post(
        "/api/v1/groups",
        headers=admin,
        json={"name": "lobby", "retention_days": 7, "priority": 0},
    )
    refused = await client.put(
        "/api/v1/cameras/cam2/group", headers=admin, json={"group": "lobby"}
    )
    moved = await client.put(
        "/api/v1/cameras/cam2/group",
        headers=admin,
        json={"group": "lobby", "confirm": True},
    )

    assert created.status == 201
    assert refused.status == 409
    assert (await refused.json())["would_delete"]["segments"] == 2
    assert moved.status == 200
    assert store.index.camera_group("cam2") == "lobby"


async def test_group_bodies_with_misspelt_field_refused_naming_it(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    admin = _auth(store, "ada", Role.ADMIN)
    assert store.index.camera_group("cam2") == "key-area"

    moved = await client.put(
        "/api/v1/cameras/cam2/group",
        headers=admin,
        json={"group": "general", "confrim": True},
    )
    patched = await client.patch(
        "/api/v1/groups/general", headers=admin, json={"retention_day": 1}
    )

    assert moved.status == 400
    assert "'confrim': unknown field" in (await moved.json())["error"]["message"]
    assert patched.status == 400
    assert (
        "'retention_day': unknown field" in (await patched.json())["error"]["message"]
    )
    assert store.index.camera_group("cam2") == "key-area"


async def test_plan_route_lists_deletions_at_future_instant_deletes_nothing(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    auditor = _auth(store, "aud", Role.AUDITOR)
    at = format_rfc3339(T0_US + 45 * DAY_US)

    plan = await (
        await client.get(f"/api/v1/retention/plan?at={at}", headers=auditor)
    ).json()

    assert [(i["camera"], i["action"]) for i in plan["items"]] == [
        ("cam1", "delete")
    ] * 2
    assert len(store.files()) == 6


async def test_hold_over_several_cameras_places_one_hold_each(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    operator = _auth(store, "olive", Role.OPERATOR)

    answer = await client.post(
        "/api/v1/holds",
        headers=operator,
        json={
            "cameras": ["cam1", "cam2"],
            "start": format_rfc3339(T0_US),
            "end": format_rfc3339(T0_US + DAY_US),
            "case_id": "CASE-9",
            "reason": "break-in",
        },
    )
    store.clock.now_us = T0_US + 400 * DAY_US
    result = sweep(store.index, store.root, now_us=store.clock)

    assert answer.status == 201
    assert [h["camera"] for h in (await answer.json())["holds"]] == ["cam1", "cam2"]
    assert result.segments == 4
    assert sorted(path.split("/")[0] for path in store.files()) == ["cam1", "cam2"]


async def test_storage_reports_forecast_per_group(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    operator = _auth(store, "olive", Role.OPERATOR)

    body = await (await client.get("/api/v1/storage", headers=operator)).json()

    groups = {g["name"]: g for g in body["groups"]}
    assert groups["general"]["bytes"] == {"local": 3000, "s3": 0}
    assert groups["key-area"]["retention_days"] == 90


async def test_storage_root_missing_answers_json_naming_the_problem(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    config = Config(
        storage=StorageConfig(root=store.root / "unmounted"),
        groups=GROUPS,
        cameras=CAMERAS,
    )
    client = await aiohttp_client(
        make_app(ApiContext(config, {}, store.index, index_call))
    )

    answer = await client.get(
        "/api/v1/storage", headers=_auth(store, "olive", Role.OPERATOR)
    )
    body = await answer.json()

    assert answer.status == 200
    assert body["local"]["error"] == (
        "storage root unreadable: No such file or directory"
    )
    assert {g["name"] for g in body["groups"]} == {"general", "key-area"}


async def test_create_and_patch_group_fractional_local_days_audited(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    admin = _auth(store, "ada", Role.ADMIN)

    created = await client.post(
        "/api/v1/groups",
        headers=admin,
        json={"name": "dock", "retention_days": 10, "local_days": 0.5},
    )
    patched = await client.patch(
        "/api/v1/groups/dock", headers=admin, json={"local_days": 1.5}
    )

    assert created.status == 201 and patched.status == 200
    assert (await patched.json())["local_days"] == 1.5
    assert (
        '"local_days":"1.5"'
        in audit_entries(store.index, action="retention-change")[-1].details
    )


async def test_plan_and_groups_scoped_token_see_only_its_cameras(
    aiohttp_client: ClientFactory, store: Store
) -> None:
    client = await _client(aiohttp_client, store)
    token = create_token(store.index, "otto", Role.OPERATOR, cameras=("cam2",))
    scoped = {"Authorization": f"Bearer {token}"}
    at = format_rfc3339(T0_US + 400 * DAY_US)

    plan = await (
        await client.get(f"/api/v1/retention/plan?at={at}", headers=scoped)
    ).json()
    groups = await (await client.get("/api/v1/groups", headers=scoped)).json()

    assert {item["camera"] for item in plan["items"]} == {"cam2"}
    assert {g["name"]: g["cameras"] for g in groups["groups"]} == {
        "general": [],
        "key-area": ["cam2"],
    }
