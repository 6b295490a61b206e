"""A path no route matches answers in the shape of the API it is under."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/api/v1/threads/abc", {"code", "message"}),
        ("/api/v1/no-such-thing", {"code", "message"}),
        ("/v1/nothing-here", {"message", "type", "param", "code"}),
    ],
)
def test_an_unknown_api_path_gets_a_json_404(path, shape):
    response = Client().get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert set(response.json()["error"]) == shape
    assert response.json()["error"]["code"] == "not_found"


def test_an_unknown_page_is_still_a_page():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
