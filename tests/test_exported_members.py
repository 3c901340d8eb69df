import omnisdk


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(omnisdk) if not name.startswith(("_", "@"))} - {
        "hookspecs", "providers", "store", "delivery", "testing", "cli", "default_plugins", "journeys", "messages",
        "policies", "analytics", "asgi", "demo", "webhooks",
    }
    assert omnisdk.__all__ == sorted(omnisdk.__all__)
    assert public <= set(omnisdk.__all__)
