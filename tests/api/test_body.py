import pytest

from nvr.api.body import load_json_body


def test_load_json_body_plain_object_parsed() -> None:
    assert load_json_body('{"camera": "gate", "n": [1, 2]}') == {
        "camera": "gate",
        "n": [1, 2],
    }


@pytest.mark.parametrize("depth", [40, 5000])
def test_load_json_body_deep_nesting_refused(depth: int) -> None:
    with pytest.raises(ValueError, match="nested deeper"):
        load_json_body("[" * depth + "]" * depth)


def test_load_json_body_lone_surrogate_refused() -> None:
    with pytest.raises(ValueError, match="unpaired surrogate"):
        load_json_body('{"case_id": "c\\ud800"}')


@pytest.mark.parametrize(
    "text", ['{"a": "x\\u0000y"}', '{"a\\u0000": 1}', '["\\u0000"]']
)
def test_load_json_body_nul_character_refused(text: str) -> None:
    with pytest.raises(ValueError, match="NUL"):
        load_json_body(text)
