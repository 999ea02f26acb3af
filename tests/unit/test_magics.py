"""%pycont's own expansion of notebook variables: ``{NAME}`` only, docker templates untouched."""

from __future__ import annotations

from pycont.magics import expand_names


def test_a_defined_name_in_braces_is_its_value() -> None:
    ns = {"REGISTRY": "127.0.0.1:40123", "n": 3}
    assert expand_names("push {REGISTRY}/myapp:v2", ns) == "push 127.0.0.1:40123/myapp:v2"
    assert expand_names("logs --tail {n} web", ns) == "logs --tail 3 web"


def test_templates_and_unknown_names_stay_as_typed() -> None:
    ns = {"Name": "x", "json": "y"}
    for line in (
        "inspect -f '{{.State.Pid}}' web",
        "inspect -f '{{json .}}' web",
        "inspect -f '{{Name}}' web",
        "run busybox echo {missing} {1} {a.b}",
    ):
        assert expand_names(line, ns) == line
