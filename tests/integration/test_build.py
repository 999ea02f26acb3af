"""pycont build on the real kernel: RUN in containers, COPY from a context, the cache.

Each test builds in its own context folder and names its images ``pc-build-<test>``; the
suite's PYCONT_ROOT is private, and the integration conftest checks that no container, mount
or cgroup is left behind, also after a failing build.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

import pycont
from pycont.builder.build import BuildError, build
from pycont.builder.progress import BuildResult, Quiet
from pycont.images import Store
from tests.helpers import cli, mountinfo_lines, requires

pytestmark = requires("root", "overlay")

APP = """\
FROM busybox
LABEL org.example.course=pycont
WORKDIR /app
COPY greeting.txt ./
RUN cat greeting.txt > built.txt && echo built >> built.txt
ENV GREETING=hello
EXPOSE 3000/tcp
VOLUME /data
CMD ["cat", "/app/built.txt"]
"""


def context(tmp_path: Path, dockerfile: str = APP, **files: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in {"greeting.txt": "hi\n", **files}.items():
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ctx


def quiet_build(ctx: Path, tag: str, **kw: object) -> BuildResult:
    return build(str(ctx), tag, progress=Quiet(), **kw)  # type: ignore[arg-type]


def run_output(image: str, *cmd: str) -> str:
    c = pycont.run(image, list(cmd) or None, rm=True)
    assert c.exit_code == 0, c.output
    return c.output


def no_build_containers() -> None:
    names = [c.name for c in pycont.containers(all=True)]
    assert not [n for n in names if n.startswith("pycont-build-")], names
    assert not mountinfo_lines("pycont-build")


def test_build_runs_copies_and_records_config(tmp_path: Path) -> None:
    result = quiet_build(context(tmp_path), "pc-build-app:1.0")
    assert result.tags == ["pc-build-app:1.0"]
    assert run_output("pc-build-app:1.0") == "hi\nbuilt\n"
    rec = Store().get("pc-build-app:1.0")
    cfg = rec.config["config"]
    assert cfg["WorkingDir"] == "/app"
    assert "GREETING=hello" in cfg["Env"]
    assert cfg["ExposedPorts"] == {"3000/tcp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["Labels"] == {"org.example.course": "pycont"}
    assert cfg["Cmd"] == ["cat", "/app/built.txt"]
    # One history row per instruction on top of busybox's; only WORKDIR, COPY, RUN make layers.
    base = Store().get("busybox")
    new = rec.config["history"][len(base.config["history"]) :]
    assert [h["created_by"].split()[0] for h in new] == [
        "LABEL", "WORKDIR", "COPY", "RUN", "ENV", "EXPOSE", "VOLUME", "CMD",
    ]  # fmt: skip
    assert [not h.get("empty_layer", False) for h in new] == [
        False, True, True, True, False, False, False, False,
    ]  # fmt: skip
    assert len(rec.diff_ids) == len(base.diff_ids) + 3
    assert new[3]["created_by"].startswith("RUN /bin/sh -c cat greeting.txt")
    assert new[7]["created_by"] == 'CMD ["cat" "/app/built.txt"]'
    no_build_containers()


def test_history_cli_shows_each_step(tmp_path: Path) -> None:
    quiet_build(context(tmp_path), "pc-build-hist:1")
    proc = cli("history", "--no-trunc", "pc-build-hist:1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        "EXPOSE map[3000/tcp:{}]" in ln and " 0B" in ln.replace(" 0 B", " 0B") for ln in lines
    )
    assert any("COPY greeting.txt ./" in ln for ln in lines)


def test_rebuild_is_cached_and_an_edit_misses_from_its_copy(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    first = quiet_build(ctx, "pc-build-cache:1")
    again = quiet_build(ctx, "pc-build-cache:1")
    assert again.id == first.id  # every step reused, the config with it: the same image
    assert [s.cached for s in again.steps[1:]] == [True] * (len(again.steps) - 1)
    (ctx / "greeting.txt").write_text("hello\n")
    edited = quiet_build(ctx, "pc-build-cache:1")
    cached = [s.text.split()[0] for s in edited.steps if s.cached]
    assert cached == ["LABEL", "WORKDIR"]  # up to the COPY of the edited file, not after
    assert run_output("pc-build-cache:1") == "hello\nbuilt\n"
    fresh = quiet_build(ctx, "pc-build-cache:1", no_cache=True)
    assert not any(s.cached for s in fresh.steps)


def test_mtime_alone_does_not_miss(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    quiet_build(ctx, "pc-build-mtime:1")
    os.utime(ctx / "greeting.txt", (1, 1))
    again = quiet_build(ctx, "pc-build-mtime:1")
    assert all(s.cached for s in again.steps[1:])


def test_build_args_reach_run_and_miss_the_cache(tmp_path: Path) -> None:
    df = "ARG BASE=busybox\nFROM $BASE\nARG V=one\nRUN echo $V > /v\nCMD cat /v\n"
    ctx = context(tmp_path, df)
    quiet_build(ctx, "pc-build-args:1")
    assert run_output("pc-build-args:1") == "one\n"
    second = quiet_build(ctx, "pc-build-args:1", build_args={"V": "two"})
    assert not second.steps[2].cached
    assert run_output("pc-build-args:1") == "two\n"
    cfg = Store().get("pc-build-args:1").config["config"]
    assert not any(e.startswith("V=") for e in cfg["Env"])  # an ARG is not kept in the image


def test_multi_stage_copies_only_what_it_asks_for(tmp_path: Path) -> None:
    df = (
        "FROM busybox AS build\n"
        "RUN mkdir /out && echo artefact > /out/app && dd if=/dev/zero of=/junk bs=1k count=512\n"
        "FROM busybox\n"
        "COPY --from=build /out/app /usr/local/bin/app\n"
        "CMD cat /usr/local/bin/app; test ! -e /junk && echo clean\n"
    )
    ctx = context(tmp_path, df)
    quiet_build(ctx, "pc-build-multi:1")
    assert run_output("pc-build-multi:1") == "artefact\nclean\n"
    quiet_build(ctx, "pc-build-multi:build", target="build")
    assert run_output("pc-build-multi:build", "ls", "/junk") == "/junk\n"


def test_heredoc_and_shell_and_entrypoint(tmp_path: Path) -> None:
    df = (
        "FROM busybox\n"
        "RUN <<EOF\n"
        "echo line1 > /h\n"
        "echo line2 >> /h\n"
        "EOF\n"
        'SHELL ["/bin/sh", "-ec"]\n'
        "RUN cat > /g <<'END'\n"
        "$NOT_EXPANDED\n"
        "END\n"
        'ENTRYPOINT ["cat"]\n'
        'CMD ["/h", "/g"]\n'
    )
    quiet_build(context(tmp_path, df), "pc-build-heredoc:1")
    assert run_output("pc-build-heredoc:1") == "line1\nline2\n$NOT_EXPANDED\n"


def test_onbuild_runs_in_the_child(tmp_path: Path) -> None:
    quiet_build(
        context(tmp_path, "FROM busybox\nONBUILD RUN echo triggered > /t\n"), "pc-build-ob:base"
    )
    assert Store().get("pc-build-ob:base").config["config"]["OnBuild"] == [
        "RUN echo triggered > /t"
    ]
    child = tmp_path / "child"
    child.mkdir()
    quiet_build(context(child, "FROM pc-build-ob:base\n"), "pc-build-ob:child")
    assert run_output("pc-build-ob:child", "cat", "/t") == "triggered\n"
    assert not Store().get("pc-build-ob:child").config["config"].get("OnBuild")


def test_failing_run_leaves_no_image_and_no_container(tmp_path: Path) -> None:
    df = "FROM busybox\nRUN echo step one > /one\nRUN echo about to fail; exit 3\n"
    ctx = context(tmp_path, df)
    before = Store().images()
    proc = cli("build", "-t", "pc-build-fail:1", str(ctx))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last
        == "pycont: Dockerfile:3: RUN echo about to fail; exit 3: the command exited with code 3"
    )
    assert "about to fail" in proc.stderr  # RUN's output was streamed
    assert [i.reference for i in Store().images()] == [i.reference for i in before]
    no_build_containers()


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM busybox\nFROB x\n", "Dockerfile:2: unknown instruction: FROB"),
        ("FROM busybox\nSHELL /bin/bash -c\n", "Dockerfile:2: SHELL requires the arguments"),
        ('FROM busybox\nCMD ["a", 1]\n', "Dockerfile:2: when using JSON array syntax"),
        ("FROM busybox\nCOPY ../x /x\n", "outside the build context"),
        ("FROM busybox\nCOPY --from=nowhere /a /b\n", "COPY --from=nowhere"),
        ("FROM busybox\nCOPY missing.txt /x\n", "missing.txt"),
        ("FROM busybox\nADD https://example.com/x /x\n", "need the network"),
        ("FROM busybox\nRUN --mount=type=cache,target=/c true\n", "RUN --mount"),
        ("FROM pc-build-no-such-image\n", "FROM pc-build-no-such-image"),
        ("", "no instructions"),
    ],
)
def test_errors_are_one_line_with_exit_1(tmp_path: Path, dockerfile: str, message: str) -> None:
    proc = cli("build", "-t", "pc-build-err:1", str(context(tmp_path, dockerfile)))
    assert proc.returncode == 1 or (proc.returncode == 125 and "Dockerfile" in proc.stderr), proc
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("pycont:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not [i for i in Store().images() if (i.reference or "").startswith("pc-build-err")]
    no_build_containers()


def test_builder_prune_clears_the_cache(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    quiet_build(ctx, "pc-build-prune:1")
    row = [ln.split() for ln in cli("system", "df").stdout.splitlines() if ln.startswith("Build")]
    assert row and int(row[0][2]) >= 7, row  # TYPE is two words: Build Cache
    proc = cli("builder", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Total reclaimed space:")
    row = [ln.split() for ln in cli("system", "df").stdout.splitlines() if ln.startswith("Build")]
    assert row[0][2:4] == ["0", "0"] and row[0][4] == "0B", row
    again = quiet_build(ctx, "pc-build-prune:1")
    assert not any(s.cached for s in again.steps)
    assert run_output("pc-build-prune:1") == "hi\nbuilt\n"  # the image's own layers stayed


def test_concurrent_builds_of_one_dockerfile(tmp_path: Path) -> None:
    ctx = context(tmp_path, APP.replace("built", "concurrent"))
    errors: list[BaseException] = []
    results: list[BuildResult] = []

    def one(i: int) -> None:
        try:
            results.append(quiet_build(ctx, f"pc-build-conc:{i}"))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(2):
        assert run_output(f"pc-build-conc:{i}") == "hi\nconcurrent\n"
    assert quiet_build(ctx, "pc-build-conc:2").cache_hits == len(results[0].steps) - 1


def test_cli_quiet_prints_the_id_and_plain_progress_marks_cached(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    proc = cli("build", "-q", "-t", "pc-build-cli:1", str(ctx))
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip()
    assert image_id.startswith("sha256:") and proc.stderr == ""
    proc = cli("build", "--progress", "plain", "-t", "pc-build-cli:1", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(" CACHED") == 8
    assert f"writing image {image_id} done" in proc.stderr
    inspect = json.loads(cli("image", "inspect", "pc-build-cli:1").stdout)
    assert inspect[0]["Config"]["ExposedPorts"] == {"3000/tcp": {}}


def test_build_raises_build_error_for_a_failing_step(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="exited with code 1"):
        quiet_build(context(tmp_path, "FROM busybox\nRUN false\n"), "pc-build-raise:1")
    no_build_containers()


def test_user_applies_to_run_workdir_and_the_image(tmp_path: Path) -> None:
    df = (
        "FROM busybox\n"
        "USER 1000:1000\n"
        "WORKDIR /work\n"  # created for the USER, as BuildKit does
        "RUN id -u > uid && id -g >> uid\n"
        "CMD cat /work/uid; id -u\n"
    )
    quiet_build(context(tmp_path, df), "pc-build-user:1")
    assert run_output("pc-build-user:1") == "1000\n1000\n1000\n"
    assert Store().get("pc-build-user:1").config["config"]["User"] == "1000:1000"


def test_run_network_default_is_loopback_only_and_host_is_asked_for(tmp_path: Path) -> None:
    df = (
        "FROM busybox\n"
        "RUN ls /sys/class/net > /default-net\n"
        "RUN --network=host ls /sys/class/net > /host-net\n"
        "CMD cat /default-net\n"
    )
    quiet_build(context(tmp_path, df), "pc-build-net:1")
    # the host's devices as the build saw them: the runs below make this store's default
    # bridge, which stays up after them (as docker0)
    at_build = sorted(os.listdir("/sys/class/net"))
    assert run_output("pc-build-net:1").split() == ["lo"]
    host = run_output("pc-build-net:1", "cat", "/host-net").split()
    assert sorted(host) == at_build


def test_from_a_later_stage_name_is_an_image_name(tmp_path: Path) -> None:
    # Stage names refer backwards only: here "busybox" names the image, not the stage below.
    df = "FROM busybox AS first\nRUN echo one > /one\nFROM first AS busybox\nCMD cat /one\n"
    quiet_build(context(tmp_path, df), "pc-build-names:1")
    assert run_output("pc-build-names:1") == "one\n"
