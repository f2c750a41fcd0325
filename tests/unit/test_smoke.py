import hotreload


def test_public_api_is_exported() -> None:
    for name in hotreload.__all__:
        assert hasattr(hotreload, name), name
