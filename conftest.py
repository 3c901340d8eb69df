"""The root of `pytest tests plugins/*`: the secret audit watches the whole suite (docs/security.md, "Secrets")."""

pytest_plugins = ["omnisdk.testing.secret_audit", "pytester"]
