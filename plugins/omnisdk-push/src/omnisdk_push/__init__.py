"""omnisdk push channel: FCM HTTP v1, APNs over HTTP/2, and Web Push (VAPID + aes128gcm)."""

from __future__ import annotations

from typing import Any

import omnisdk

from .apns import APNsPush
from .fcm import FCMPush
from .webpush import WebPush

__all__ = ["APNsPush", "FCMPush", "WebPush", "register_providers"]


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(FCMPush)
    register(APNsPush)
    register(WebPush)
