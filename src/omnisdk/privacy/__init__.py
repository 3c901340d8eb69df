"""Privacy: erasure (`omni.forget`), access (`omni.export`), suppression of forgotten identifiers, and retention."""

from __future__ import annotations

from ._export import FORMAT, VERSION, export_customer
from ._forget import ForgetNotice, Forgetter
from ._retention import RetentionStatus, RetentionWorker
from ._settings import PrivacySettings, RetentionSettings
from ._suppression import digest

__all__ = ["FORMAT", "VERSION", "ForgetNotice", "Forgetter", "PrivacySettings", "RetentionSettings",
           "RetentionStatus", "RetentionWorker", "digest", "export_customer"]
