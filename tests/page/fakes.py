"""An in-memory stand-in for the broker's key endpoints, for the key page's unit tests."""

from __future__ import annotations

from typing import Any

from broker.names import Role
from broker.site.broker_api import BrokerAnswer, BrokerApi, BrokerUnavailable, Submission


def health(status: str = "connected", **extra: Any) -> dict[str, Any]:
    """A key's health shaped like broker/api/schemas.py HealthView (not verified yet)."""
    return {
        "status": status,
        "detail": "",
        "rights": [],
        "expires_in_days": None,
        "version": 1,
        "verified_at": None,
        "changed_at": "2026-12-04T20:00:00+00:00",
        "stop": False,
        "requested_at": None,
        **extra,
    }


def view(account: str, exchange: str, role: str, **extra: Any) -> dict[str, Any]:
    """A key view shaped like broker/api/schemas.py KeyView."""
    return {
        "account": account,
        "exchange": exchange,
        "role": role,
        "name": "main",
        "api_key_masked": "AKIA...WXYZ",
        "status": "active",
        "permissions": {"read": True},
        "ip_restricted": True,
        "ip_whitelist": None,
        "expires_at": None,
        "warnings": [],
        "version": 1,
        "created_at": "2026-12-04T20:00:00Z",
        "updated_at": "2026-12-04T20:00:00Z",
        "health": health(),
        **extra,
    }


class FakeBroker(BrokerApi):
    """Keeps views per account; `next_put` scripts the answer to the next submission."""

    def __init__(self) -> None:
        super().__init__("http://broker.invalid", "CANARY-INTAKE-TOKEN", 1.0)
        self.keys: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.submissions: list[Submission] = []
        self.next_put: BrokerAnswer | None = None
        self.down = False
        self.index_complete = True
        self.health_queries: list[tuple[str | None, int]] = []
        self.verification_requests: list[tuple[str, str, str]] = []

    def _check(self) -> None:
        if self.down:
            raise BrokerUnavailable("the broker did not answer (ClientConnectorError)")

    async def list_keys(self, account: str) -> BrokerAnswer:
        self._check()
        keys = [v for (a, _, _), v in sorted(self.keys.items()) if a == account]
        return BrokerAnswer(200, {"keys": keys})

    async def key_health(self, status: str | None, limit: int) -> BrokerAnswer:
        """`GET /v1/keys` over the stored views (broker/api/health_routes.py's shape)."""
        self._check()
        self.health_queries.append((status, limit))
        counts: dict[str, dict[str, int]] = {}
        matching = []
        for (account, exchange, role), stored in sorted(self.keys.items()):
            found = stored["health"]["status"]
            per = counts.setdefault(found, {})
            per[exchange] = per.get(exchange, 0) + 1
            if status in (None, found):
                matching.append(
                    {
                        "account": account,
                        "exchange": exchange,
                        "role": role,
                        "health": stored["health"],
                    }
                )
        return BrokerAnswer(
            200,
            {
                "keys": matching[:limit],
                "total": len(matching),
                "counts": counts,
                "index_complete": self.index_complete,
            },
        )

    async def get_key(self, account: str, exchange: str, role: Role) -> BrokerAnswer:
        self._check()
        found = self.keys.get((account, exchange, role))
        if found is None:
            return BrokerAnswer(404, {"error": "not_found", "message": "no such key"})
        return BrokerAnswer(200, found)

    async def put_key(
        self, account: str, exchange: str, role: Role, submission: Submission
    ) -> BrokerAnswer:
        self._check()
        self.submissions.append(submission)
        answer, self.next_put = self.next_put, None
        if answer is not None:
            return answer
        existed = (account, exchange, role) in self.keys
        stored = view(account, exchange, role, name=submission.name)
        self.keys[(account, exchange, role)] = stored
        return BrokerAnswer(200 if existed else 201, stored)

    async def request_verification(self, account: str, exchange: str, role: Role) -> BrokerAnswer:
        """ "Check now": the broker's 202, and the key view's health says it waits."""
        self._check()
        found = self.keys.get((account, exchange, role))
        if found is None:
            return BrokerAnswer(404, {"error": "not_found", "message": "no such key"})
        self.verification_requests.append((account, exchange, role))
        found["health"]["requested_at"] = "2026-12-04T23:50:00+00:00"
        asked = {"account": account, "exchange": exchange, "role": role}
        return BrokerAnswer(
            202, {**asked, "version": 1, "requested_at": "2026-12-04T23:50:00+00:00"}
        )

    async def delete_key(self, account: str, exchange: str, role: Role) -> BrokerAnswer:
        self._check()
        if self.keys.pop((account, exchange, role), None) is None:
            return BrokerAnswer(404, {"error": "not_found", "message": "no such key"})
        return BrokerAnswer(204)
