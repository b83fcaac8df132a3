"""HTTP channels: a WeCom / DingTalk group robot, and any endpoint taking the structured notice as JSON.

The URL of a robot carries its key: it is never logged nor put in a failure's reason.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from maintenance.notify.channels import DeliveryFailed
from maintenance.notify.notices import Notice

TIMEOUT = 10.0  # seconds for one request
RETRIED_STATUS = {408, 425, 429}  # client errors that pass; other 4xx answers would come again


class _Webhook:
    """Posts JSON to one URL; a failure to connect, a 5xx or a rate limit is worth retrying."""

    def __init__(self, name: str, url: SecretStr, *, timeout: float = TIMEOUT) -> None:
        self.name = name
        self._url = url
        self._timeout = timeout

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        url = self._url.get_secret_value()
        try:
            # a client per notice: notices are rare, and nothing is left open between them
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                resp = await client.post(url, json=body)
        except (httpx.HTTPError, httpx.InvalidURL) as err:
            raise DeliveryFailed(f"{type(err).__name__}: {str(err).replace(url, '<url>')}",
                                 retry=not isinstance(err, httpx.InvalidURL)) from None
        if not resp.is_success:
            raise DeliveryFailed(f"HTTP {resp.status_code}: {resp.text[:200]}",
                                 retry=resp.status_code >= 500 or resp.status_code in RETRIED_STATUS)
        return resp


class RobotChannel(_Webhook):
    """A chat-group robot: `{"msgtype": "text"}`; HTTP 200 with `errcode` != 0 is a refusal (retried)."""

    async def send(self, notice: Notice) -> None:
        """Post the notice's text."""
        resp = await self._post({"msgtype": "text", "text": {"content": notice.text}})
        try:
            answer = resp.json()
        except ValueError:
            return  # not a robot's answer: the HTTP status says it all
        if isinstance(answer, dict) and answer.get("errcode", 0) != 0:
            # WeCom and DingTalk refuse this way, rate limits (45009, 130101) included: worth retrying
            raise DeliveryFailed(f"robot refused: errcode {answer.get('errcode')}: "
                                 f"{str(answer.get('errmsg', ''))[:200]}")


class JsonWebhookChannel(_Webhook):
    """Any endpoint taking the structured notice; a 2xx answer accepts it."""

    async def send(self, notice: Notice) -> None:
        """Post the notice's data."""
        await self._post(notice.data)
