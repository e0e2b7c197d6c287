"""The headers that sign a webhook call: always Standard Webhooks' (`webhook-id`, stable across
retries, `webhook-timestamp`, `webhook-signature` with one `v1,` signature per secret, so a
secret can rotate), signed by the `standardwebhooks` reference library; and with authorization
HMAC, the original's `Authorization: HMAC <base64(HMAC-SHA256(UTF-8(secret), raw body))>` with
the first (newest) secret as configured, `whsec_` prefix included."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

from standardwebhooks.webhooks import Webhook


def headers(
    event_id: str, body: bytes, secrets: list[str], authorization: str, at: datetime
) -> dict[str, str]:
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, at, text) for secret in secrets)
    signed = {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
    if authorization == "HMAC":
        mac = hmac.new(secrets[0].encode(), body, hashlib.sha256).digest()
        signed["Authorization"] = "HMAC " + base64.b64encode(mac).decode()
    return signed
