import inspect

import omnisdk


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name, value in vars(omnisdk).items()
        if not name.startswith(("_", "@")) and not inspect.ismodule(value)
    }
    assert omnisdk.__all__ == sorted(omnisdk.__all__)
    assert public == set(omnisdk.__all__) - {"__version__"}
