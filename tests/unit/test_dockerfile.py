"""The Dockerfile parser and docker's variable substitution, against BuildKit's behaviour."""

from __future__ import annotations

import pytest

from pycont.builder.dockerfile import (
    INSTRUCTIONS,
    Dockerfile,
    DockerfileError,
    Heredoc,
    Instruction,
    expand,
    expand_heredoc,
    parse,
    parse_duration,
    split_words,
    substitute,
)
from pycont.errors import UsageError


def one(text: str, escape_line: str = "") -> Instruction:
    """The single instruction after FROM scratch."""
    (inst,) = parse(escape_line + "FROM scratch\n" + text).stages[0].instructions
    return inst


def fails(text: str, match: str) -> DockerfileError:
    with pytest.raises(DockerfileError, match=match) as info:
        parse(text)
    return info.value


def word(text: str, env: dict[str, str] | None = None, escape: str = "\\") -> str:
    """One word substituted and unquoted, as an ENV value is."""
    inst = Instruction("ENV", 1, "ENV k=" + text, {}, (), pairs=(("k", text),))
    value = expand(inst, env or {}, escape).pairs[0][1]
    assert value is not None
    return value


# --- parser directives ------------------------------------------------------------------------


def test_escape_backtick_keeps_windows_paths_and_continues_lines() -> None:
    df = parse("# escape=`\nFROM scratch\nCOPY C:\\src `\n  C:\\dest\\\n")
    assert df.escape == "`"
    (inst,) = df.stages[0].instructions
    assert inst.args == ("C:\\src", "C:\\dest\\")
    assert expand(inst, {}, df.escape).args == ("C:\\src", "C:\\dest\\")


def test_escape_directive_is_case_insensitive_with_spaces() -> None:
    assert parse("#  ESCAPE = `\nFROM scratch\n").escape == "`"


def test_invalid_escape_token() -> None:
    fails("# escape=x\nFROM scratch\n", r"Dockerfile:1: invalid escape token 'x'")


def test_duplicate_directive() -> None:
    fails("# escape=`\n# escape=\\\nFROM a\n", "Dockerfile:2: only one escape parser directive")


def test_syntax_and_check_directives_are_noted() -> None:
    df = parse("# syntax=docker/dockerfile:1\n# check=skip=all\nFROM scratch\n")
    assert df.notes[0].startswith("line 1: # syntax=docker/dockerfile:1 is ignored")
    assert df.notes[1].startswith("line 2: # check=skip=all is ignored")


@pytest.mark.parametrize(
    "text",
    [
        "# foo=bar\n# escape=`\nFROM scratch\n",  # an unknown directive ends them
        "# a comment\n# escape=`\nFROM scratch\n",
        "\n# escape=`\nFROM scratch\n",  # so does an empty line
        "FROM scratch\n# escape=`\n",  # and an instruction
    ],
)
def test_directives_only_at_the_very_top(text: str) -> None:
    assert parse(text).escape == "\\"


# --- lines, continuations, comments ------------------------------------------------------------


def test_continuation_joins_lines_as_docker_does() -> None:
    inst = one("RUN echo a \\\n    b\\\nc\n")
    assert inst.args == ("echo a     bc",)
    assert inst.original == "RUN echo a     bc"
    assert inst.line == 2


def test_continuation_at_eof_ends_the_instruction() -> None:
    assert one("RUN echo a \\").args == ("echo a",)


def test_comment_lines_inside_continuation_are_dropped() -> None:
    assert one("RUN a \\\n# note\n   # indented note\n b\n").args == ("a  b",)


def test_empty_continuation_line_is_allowed_and_noted() -> None:
    df = parse("FROM scratch\nRUN a \\\n\n   \n b\nUSER x\n")
    run, user = df.stages[0].instructions
    assert run.args == ("a  b",)
    assert user.line == 6
    assert any("empty continuation line" in n for n in df.notes)


def test_escaped_escape_at_end_is_not_a_continuation() -> None:
    run, user = parse("FROM scratch\nRUN echo a\\\\\nUSER x\n").stages[0].instructions
    assert run.args == ("echo a\\\\",)
    assert user.cmd == "USER"


def test_backslash_with_trailing_blanks_still_continues() -> None:
    assert one("RUN a \\  \t\nb\n").args == ("a b",)


def test_crlf_line_endings() -> None:
    df = parse("FROM scratch\r\nRUN a \\\r\n b\r\nENV k=v\r\n")
    run, env = df.stages[0].instructions
    assert run.args == ("a  b",)
    assert env.pairs == (("k", "v"),)


def test_bom_at_start_is_skipped() -> None:
    df = parse("\ufeff# escape=`\nFROM scratch\n")
    assert df.escape == "`"


def test_whitespace_and_tabs_around_instructions() -> None:
    df = parse("  \tFROM\t scratch  \n\t  # comment\n\tRUN\t\techo  hi  \n")
    assert df.stages[0].base == "scratch"
    assert df.stages[0].instructions[0].args == ("echo  hi",)


@pytest.mark.parametrize("name", ["from", "From", "fRoM"])
def test_instruction_names_are_case_insensitive(name: str) -> None:
    df = parse(f"{name} scratch\nrun echo\nCopy a b\n")
    assert [i.cmd for i in df.stages[0].instructions] == ["RUN", "COPY"]
    assert df.stages[0].from_.cmd == "FROM"


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n", "# only\n  # comments\n"])
def test_file_with_no_instructions(text: str) -> None:
    err = fails(text, "file with no instructions")
    assert isinstance(err, UsageError)
    assert str(err).startswith("Dockerfile:")


def test_unknown_instruction_names_line_and_accepted() -> None:
    err = fails("FROM scratch\n\nFOO bar\n", r"^Dockerfile:3: unknown instruction: FOO \(accepted:")
    assert "ADD, ARG, CMD, COPY" in str(err)


def test_errors_name_the_path_given() -> None:
    with pytest.raises(DockerfileError, match=r"^ctx/Dockerfile.dev:2:"):
        parse("FROM a\nfoo\n", "ctx/Dockerfile.dev")


def test_instruction_before_from_is_rejected() -> None:
    fails("ARG A\nRUN x\nFROM scratch\n", "Dockerfile:2: no build stage in current context")


def test_only_args_is_no_stage() -> None:
    fails("ARG A=1\n", "contains no stages to build")


def test_instructions_list() -> None:
    assert "HEALTHCHECK" in INSTRUCTIONS and "ONBUILD" in INSTRUCTIONS
    assert len(INSTRUCTIONS) == 18


# --- exec and shell forms ----------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["RUN", "CMD", "ENTRYPOINT"])
def test_exec_form(cmd: str) -> None:
    inst = one(f'{cmd} ["/bin/echo", "a b"]')
    assert inst.json and inst.args == ("/bin/echo", "a b")


@pytest.mark.parametrize(
    "text",
    [
        "['/bin/echo', 'a']",  # single quotes are not JSON
        '["a",]',  # trailing comma
        '["a"] trailing',  # text after the array
        '["a"',  # unterminated
        "[NaN]",  # not JSON for Go either
        "echo [x]",
    ],
)
def test_not_json_is_shell_form(text: str) -> None:
    inst = one("CMD " + text)
    assert not inst.json and inst.args == (text,)


def test_json_array_of_non_strings_is_an_error() -> None:
    # docker: "when using JSON array syntax, arrays must be comprised of strings only"
    fails('FROM a\nCMD ["a", 1]\n', "Dockerfile:2: when using JSON array syntax")


def test_json_unicode_escapes_and_empty_array() -> None:
    assert one('CMD ["caf\\u00e9", "\\t"]').args == ("café", "\t")
    empty = one("ENTRYPOINT  []")
    assert empty.json and empty.args == ()


def test_shell_form_keeps_text_raw() -> None:
    inst = one("RUN echo \"$HOME\" 'x'  &&  ls")
    assert inst.args == ("echo \"$HOME\" 'x'  &&  ls",)


def test_run_without_command() -> None:
    fails("FROM a\nRUN\n", "RUN requires at least one argument")


def test_shell_must_be_json() -> None:
    assert one('SHELL ["/bin/bash", "-c"]').args == ("/bin/bash", "-c")
    fails("FROM a\nSHELL /bin/bash -c\n", "SHELL requires the arguments to be in JSON form")
    fails("FROM a\nSHELL []\n", "SHELL requires at least one argument")


# --- HEALTHCHECK -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["NONE", "none"])
def test_healthcheck_none(text: str) -> None:
    assert one("HEALTHCHECK " + text).args == ("NONE",)


def test_healthcheck_cmd_forms_and_flags() -> None:
    shell = one("HEALTHCHECK --interval=5s --timeout=1m30s --start-period=0 --retries=3 "
                "CMD curl -f http://x/ || exit 1")  # fmt: skip
    assert shell.args == ("CMD", "curl -f http://x/ || exit 1") and not shell.json
    assert shell.flags == {"interval": "5s", "timeout": "1m30s", "start-period": "0",
                           "retries": "3"}  # fmt: skip
    exec_ = one('HEALTHCHECK --start-interval=2s cmd ["curl", "x"]')
    assert exec_.args == ("CMD", "curl", "x") and exec_.json


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK --interval=1s NONE", "HEALTHCHECK NONE takes no flags"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK TEST x", "Unknown type 'TEST' in HEALTHCHECK"),
        ("HEALTHCHECK --interval=5 CMD x", "HEALTHCHECK --interval: invalid duration '5'"),
        ("HEALTHCHECK --timeout=10us CMD x", "Interval --timeout cannot be less than 1ms"),
        ("HEALTHCHECK --timeout=-1s CMD x", "Interval --timeout cannot be less than 1ms"),
        ("HEALTHCHECK --retries=-1 CMD x", r"--retries cannot be negative \(-1\)"),
        ("HEALTHCHECK --retries=x CMD x", "--retries must be a whole number"),
        ("HEALTHCHECK --every=1s CMD x", "unknown flag: --every for HEALTHCHECK"),
    ],
)
def test_healthcheck_errors(text: str, match: str) -> None:
    fails("FROM a\n" + text + "\n", "Dockerfile:2: " + match)


@pytest.mark.parametrize(
    ("text", "ns"),
    [("0", 0), ("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9),
     ("300ms", 300 * 10**6), ("10us", 10_000), ("2µs", 2000), ("7ns", 7), ("-1s", -(10**9))],
)  # fmt: skip
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "s", "1d", "1s2", ".s", "1 s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# --- flags -------------------------------------------------------------------------------------


def test_copy_flags() -> None:
    inst = one("COPY --from=build --chown=1000:1000 --chmod=644 --link a b /dst/")
    assert inst.flags == {"from": "build", "chown": "1000:1000", "chmod": "644", "link": "true"}
    assert inst.args == ("a", "b", "/dst/")


def test_add_flags() -> None:
    inst = one("ADD --checksum=sha256:abc --keep-git-dir=TRUE --chown=a --chmod=755 u /d")
    assert inst.flags == {"checksum": "sha256:abc", "keep-git-dir": "true", "chown": "a",
                          "chmod": "755"}  # fmt: skip


def test_bool_flag_false_and_bad_value() -> None:
    assert one("COPY --link=false a b").flags == {"link": "false"}
    fails("FROM a\nCOPY --link=maybe a b\n", "expecting boolean value for flag --link")
    fails("FROM a\nCOPY --link= a b\n", "missing a value on flag: --link")


def test_unknown_flag_names_line_and_accepted_flags() -> None:
    err = fails("FROM a\nCOPY --form=x a b\n", r"^Dockerfile:2: unknown flag: --form for COPY")
    assert "--from, --chown, --chmod, --link" in str(err)


@pytest.mark.parametrize("text", ["ENV --x=1 a=b", "WORKDIR --p /x", "CMD --help"])
def test_flags_on_instructions_without_flags(text: str) -> None:
    fails("FROM a\n" + text + "\n", r"unknown flag: --\w+ for \w+ \(accepted: none")


def test_duplicate_and_valueless_string_flags() -> None:
    fails("FROM a\nCOPY --chown=a --chown=b x y\n", "duplicate flag specified: --chown")
    fails("FROM a\nCOPY --chown x y\n", "missing a value on flag: --chown")
    assert one("COPY --chown= x y").flags == {"chown": ""}


def test_run_flags_and_repeated_mounts() -> None:
    inst = one("RUN --network=none --security=insecure --mount=type=cache,target=/c "
               "--mount=type=tmpfs,target=/t make")  # fmt: skip
    assert inst.flags["network"] == "none" and inst.flags["security"] == "insecure"
    assert inst.flag_values("mount") == ("type=cache,target=/c", "type=tmpfs,target=/t")
    assert inst.flag_values("device") == ()
    assert inst.args == ("make",)


def test_run_flag_values_are_checked() -> None:
    fails("FROM a\nRUN --network=bridge x\n", "invalid network mode 'bridge'")
    fails("FROM a\nRUN --security=root x\n", "security 'root' is not valid")


def test_from_platform_and_quoted_flag_values() -> None:
    st = parse("FROM --platform=$BUILDPLATFORM golang AS b\n").stages[0]
    assert st.from_.flags == {"platform": "$BUILDPLATFORM"} and st.base == "golang"
    assert one('COPY --chown="a b" x y').flags == {"chown": "a b"}


def test_double_dash_ends_flags() -> None:
    assert one("COPY -- --weird /dst").args == ("--weird", "/dst")


def test_copy_from_does_not_expand_variables() -> None:
    fails("FROM a\nCOPY --from=$STAGE x y\n", "variable expansion is not supported for --from")


# --- heredocs ----------------------------------------------------------------------------------


def test_run_heredoc() -> None:
    df = parse("FROM a\nRUN <<EOF\necho $HOME\nFROM b\nEOF\nUSER x\n")
    run, user = df.stages[0].instructions
    assert len(df.stages) == 1  # the body's FROM is not an instruction
    assert run.args == ("<<EOF",)
    assert run.heredocs == (Heredoc("EOF", "echo $HOME\nFROM b\n", True),)
    assert user.line == 6
    assert expand(run, {"HOME": "/x"}) == run  # the shell expands the body


def test_heredoc_with_command_and_several_heredocs() -> None:
    inst = one("RUN <<A cat > /a && <<B cat > /b\n1\nA\n2\nB\n")
    assert inst.args == ("<<A cat > /a && <<B cat > /b",)
    assert [(h.name, h.content) for h in inst.heredocs] == [("A", "1\n"), ("B", "2\n")]


def test_chomp_heredoc_strips_leading_tabs() -> None:
    inst = one("RUN <<-EOF\n\techo a\n\t\t  b\n\tEOF\n")
    assert inst.heredocs == (Heredoc("EOF", "echo a\n  b\n", True),)


@pytest.mark.parametrize("delim", ['"EOF"', "'EOF'", 'E"O"F'])
def test_quoted_delimiter_means_no_expansion(delim: str) -> None:
    (doc,) = one(f"RUN <<{delim}\n$X\nEOF\n").heredocs
    assert doc == Heredoc("EOF", "$X\n", False)


def test_heredoc_space_after_redirect_and_empty_body() -> None:
    assert one("RUN cat << EOF\nEOF\n").heredocs == (Heredoc("EOF", "", True),)


def test_quoted_heredoc_marker_is_text() -> None:
    assert one('RUN echo "<<EOF"').heredocs == ()
    assert one('RUN ["cat", "<<EOF"]').heredocs == ()


def test_heredoc_keeps_crlf_like_buildkit() -> None:
    df = parse("FROM a\r\nRUN <<EOF\r\nx\r\nEOF\r\nUSER u\r\n")
    run, user = df.stages[0].instructions
    assert run.heredocs[0].content == "x\r\n" and user.args == ("u",)


def test_copy_and_add_heredoc() -> None:
    copy = one("COPY --chmod=755 <<EOF /usr/bin/hi\n#!/bin/sh\necho $NAME\nEOF\n")
    assert copy.args == ("<<EOF", "/usr/bin/hi")
    assert copy.heredocs == (Heredoc("EOF", "#!/bin/sh\necho $NAME\n", True),)
    assert expand(copy, {}).args == ("<<EOF", "/usr/bin/hi")
    add = one("ADD <<a <<b /d/\nA\na\nB\nb\n")
    assert [h.content for h in add.heredocs] == ["A\n", "B\n"]


def test_expand_heredoc_for_copy() -> None:
    body = "echo \"$NAME\" '${NAME}' \\$NAME ${X:-d}\n"
    assert expand_heredoc(body, {"NAME": "n"}) == "echo \"n\" 'n' $NAME d\n"


def test_heredoc_as_destination_is_an_error() -> None:
    fails("FROM a\nCOPY x <<EOF\nEOF\n", "COPY cannot accept a heredoc as a destination")


def test_unterminated_heredoc() -> None:
    fails("FROM a\n\nRUN <<EOF\necho\n", "Dockerfile:3: unterminated heredoc")


def test_onbuild_heredoc_goes_with_the_trigger() -> None:
    inst = one("ONBUILD RUN <<EOF\nmake\nEOF\n")
    assert inst.inner is not None and inst.inner.heredocs == (Heredoc("EOF", "make\n", True),)


# --- stages, FROM, ARG -------------------------------------------------------------------------


def test_multi_stage() -> None:
    df = parse("ARG V=1\nFROM golang:$V AS Build\nRUN make\nFROM scratch\nCOPY --from=build /a /\n")
    assert isinstance(df, Dockerfile)
    assert [a.pairs for a in df.meta_args] == [(("V", "1"),)]
    first, second = df.stages
    assert (first.index, first.name, first.base) == (0, "build", "golang:$V")
    assert [i.cmd for i in first.instructions] == ["RUN"]
    assert (second.index, second.name, second.base) == (1, None, "scratch")
    assert second.instructions[0].flags["from"] == "build"
    assert expand(first.from_, {"V": "1.22"}).args == ("golang:1.22",)


def test_from_with_meta_arg_default_operator() -> None:
    df = parse("ARG BASE\nFROM ${BASE:-alpine}\n")
    assert expand(df.stages[0].from_, {}).args == ("alpine",)
    fails_expand = parse("FROM $NOPE\n").stages[0].from_
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1: base name \(\$NOPE\) should not"):
        expand(fails_expand, {})


def test_duplicate_stage_names() -> None:
    fails("FROM a AS x\nFROM b as X\n", "Dockerfile:2: duplicate stage name 'x'")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("FROM", "FROM requires either one or three arguments"),
        ("FROM a b", "FROM requires either one or three arguments"),
        ("FROM a to b", "FROM requires either one or three arguments"),
        ("FROM a AS 1x", "invalid name for build stage: '1x'"),
        ("FROM a AS my/stage", "invalid name for build stage"),
    ],
)
def test_bad_from(text: str, match: str) -> None:
    fails(text + "\n", match)


def test_arg_forms() -> None:
    inst = one('ARG A B=2 C= D="x y"')
    assert inst.pairs == (("A", None), ("B", "2"), ("C", ""), ("D", '"x y"'))
    assert expand(inst, {"X": "1"}).pairs == (("A", None), ("B", "2"), ("C", ""), ("D", "x y"))
    fails("FROM a\nARG =x\n", "ARG names can not be blank")
    fails("FROM a\nARG\n", "ARG requires at least one argument")


# --- ENV and LABEL -----------------------------------------------------------------------------


def test_env_pairs_keep_quoted_spaces() -> None:
    inst = one("ENV k=v k2=\"v 2\" k3='$X' k4=a\\ b k5= k6=$X")
    assert expand(inst, {"X": "1"}).pairs == (
        ("k", "v"), ("k2", "v 2"), ("k3", "$X"), ("k4", "a b"), ("k5", ""), ("k6", "1"),
    )  # fmt: skip


def test_env_legacy_form_takes_the_rest_of_the_line() -> None:
    df = parse("FROM a\nENV PATH /usr/bin:$PATH  extra\n")
    (inst,) = df.stages[0].instructions
    assert inst.pairs == (("PATH", "/usr/bin:$PATH  extra"),)
    assert expand(inst, {"PATH": "/bin"}).pairs == (("PATH", "/usr/bin:/bin  extra"),)
    assert any("legacy" in n for n in df.notes)


def test_env_uses_values_from_before_the_instruction() -> None:
    # docs: ENV abc=bye def=$abc  ->  def gets the previous abc.
    assert expand(one("ENV abc=bye def=$abc"), {"abc": "hello"}).pairs == (
        ("abc", "bye"),
        ("def", "hello"),
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ENV", "ENV requires at least one argument"),
        ("ENV k", "ENV must have two arguments"),
        ("ENV a=1 b", "can't find = in 'b'"),
        ("ENV =x", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
    ],
)
def test_env_label_errors(text: str, match: str) -> None:
    fails("FROM a\n" + text + "\n", match)


def test_label_pairs_and_legacy() -> None:
    inst = one('LABEL "com.example.vendor"="ACME Inc" version=1.0 desc="a \\"b\\""')
    assert expand(inst, {}).pairs == (
        ("com.example.vendor", "ACME Inc"),
        ("version", "1.0"),
        ("desc", 'a "b"'),
    )
    assert expand(one("LABEL maintainer me too"), {}).pairs == (("maintainer", "me too"),)


# --- EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL, MAINTAINER, ONBUILD ----------------------------


def test_expose() -> None:
    inst = one("EXPOSE 3000 3001/tcp 53/udp 5000-5010/SCTP $P")
    assert expand(inst, {"P": "80 81/udp"}).args == (
        "3000", "3001/tcp", "53/udp", "5000-5010/SCTP", "80", "81/udp",
    )  # fmt: skip


@pytest.mark.parametrize("port", ["http", "80/icmp", "70000", "20-10", "80:80", "-1"])
def test_expose_rejects(port: str) -> None:
    fails(f"FROM a\nEXPOSE 1 {port}\n", f"Dockerfile:2: invalid port '{port}'")


def test_expose_checked_after_substitution() -> None:
    with pytest.raises(DockerfileError, match="invalid port 'x'"):
        expand(one("EXPOSE $P"), {"P": "x"})
    fails("FROM a\nEXPOSE\n", "EXPOSE requires at least one argument")


def test_volume_forms() -> None:
    assert one('VOLUME ["/a", "/b c"]').args == ("/a", "/b c")
    assert one("VOLUME /a  /b").args == ("/a", "/b")
    assert expand(one("VOLUME $D/x"), {"D": "/data"}).args == ("/data/x",)
    fails('FROM a\nVOLUME ["/a", " "]\n', "VOLUME specified can not be an empty string")
    with pytest.raises(DockerfileError, match="can not be an empty string"):
        expand(one("VOLUME $NONE"), {})


def test_user_workdir_stopsignal_take_the_whole_rest() -> None:
    assert expand(one("USER $U:staff"), {"U": "app"}).args == ("app:staff",)
    assert expand(one("WORKDIR /my dir/$D"), {"D": "x"}).args == ("/my dir/x",)
    assert expand(one("STOPSIGNAL $S"), {"S": "SIGINT"}).args == ("SIGINT",)
    fails("FROM a\nUSER\n", "USER requires exactly one argument")


@pytest.mark.parametrize("sig", ["SIGTERM", "term", "9", "SIGRTMIN+3", "KILL"])
def test_stopsignal_accepts(sig: str) -> None:
    assert expand(one("STOPSIGNAL " + sig), {}).args == (sig,)


@pytest.mark.parametrize("sig", ["SIGFOO", "0", "100"])
def test_stopsignal_rejects(sig: str) -> None:
    with pytest.raises(DockerfileError, match="invalid STOPSIGNAL"):
        expand(one("STOPSIGNAL " + sig), {})


def test_maintainer_is_kept_with_a_note() -> None:
    df = parse("FROM a\nMAINTAINER Jane <j@x.org>\n")
    assert df.stages[0].instructions[0].args == ("Jane <j@x.org>",)
    assert any("MAINTAINER is deprecated" in n for n in df.notes)


def test_onbuild_holds_its_trigger() -> None:
    inst = one("ONBUILD COPY --chown=$U . /app")
    assert inst.inner is not None and inst.inner.cmd == "COPY"
    assert inst.inner.flags == {"chown": "$U"} and inst.inner.args == (".", "/app")
    assert expand(inst, {"U": "x"}) == inst  # expanded when the trigger runs
    assert expand(inst.inner, {"U": "x"}).flags == {"chown": "x"}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD BAR x", "unknown instruction: BAR"),
    ],
)
def test_onbuild_errors(text: str, match: str) -> None:
    fails("FROM a\n" + text + "\n", "Dockerfile:2: " + match)


# --- expand: where docker substitutes ----------------------------------------------------------


def test_expand_copy_unquotes_words_and_flags() -> None:
    inst = one("COPY --chown=$U:$G --chmod=${M} \"$S\" 'lit$S' /$D/")
    out = expand(inst, {"U": "1", "G": "2", "M": "600", "S": "src", "D": "dst"})
    assert out.args == ("src", "lit$S", "/dst/")
    assert out.flags == {"chown": "1:2", "chmod": "600"}


def test_expand_copy_json_form_items() -> None:
    assert expand(one('COPY ["$A b", "/d"]'), {"A": "x"}).args == ("x b", "/d")


@pytest.mark.parametrize(
    "text",
    ["RUN echo $X", "CMD echo $X", 'ENTRYPOINT ["$X"]', 'SHELL ["$X"]', "HEALTHCHECK CMD $X",
     "MAINTAINER $X"],
)  # fmt: skip
def test_no_substitution_where_the_shell_does_it(text: str) -> None:
    inst = one(text)
    assert expand(inst, {"X": "1"}) == inst


def test_run_mount_values_are_expanded() -> None:
    inst = one("RUN --mount=type=cache,target=$C,ro --network=none make $C")
    out = expand(inst, {"C": "/cache"})
    assert out.flags == {"mount": "type=cache,target=/cache,ro", "network": "none"}
    assert out.args == ("make $C",)


def test_expand_error_names_line() -> None:
    inst = parse("FROM a\n\nWORKDIR ${X:?set X}\n", "df").stages[0].instructions[0]
    with pytest.raises(DockerfileError, match=r"^df:3: .*X: set X"):
        expand(inst, {})


# --- the substitution table --------------------------------------------------------------------

SET, EMPTY = {"V": "val"}, {"V": ""}


@pytest.mark.parametrize(
    ("text", "env", "result"),
    [
        ("$V", SET, "val"),
        ("$V", {}, ""),
        ("${V}x", SET, "valx"),
        ("$Vx", SET, ""),
        ("a$V-b", SET, "aval-b"),
        ("${V:-d}", {}, "d"),
        ("${V:-d}", EMPTY, "d"),
        ("${V:-d}", SET, "val"),
        ("${V-d}", {}, "d"),
        ("${V-d}", EMPTY, ""),
        ("${V-d}", SET, "val"),
        ("${V:+a}", {}, ""),
        ("${V:+a}", EMPTY, ""),
        ("${V:+a}", SET, "a"),
        ("${V+a}", {}, ""),
        ("${V+a}", EMPTY, "a"),
        ("${V+a}", SET, "a"),
        ("${V:?}", SET, "val"),
        ("${a:-${b}}", {"b": "B"}, "B"),
        ("${a:-${b:-c}}", {}, "c"),
        ("${a:+x${b}y}", {"a": "1", "b": "2"}, "x2y"),
        ("${a:-x y}", {}, "x y"),
        ("\\$V", SET, "$V"),
        ("\\${V}", SET, "${V}"),
        ("'$V'", SET, "$V"),
        ('"$V"', SET, "val"),
        ("\"'$V'\"", SET, "'val'"),
        ('"\\$V"', SET, "$V"),
        ('"a\\"b"', {}, 'a"b'),
        ('"a\\xb"', {}, "a\\xb"),
        ("a\\xb", {}, "axb"),
        ("$", {}, "$"),
        ("a$/b", {}, "a$/b"),
        ("$1$@$$", {}, ""),
        ("${P#*/}", {"P": "a/b/c"}, "b/c"),
        ("${P##*/}", {"P": "a/b/c"}, "c"),
        ("${P%/*}", {"P": "a/b/c"}, "a/b"),
        ("${P%%/*}", {"P": "a/b/c"}, "a"),
        ("${P/b/X}", {"P": "abcb"}, "aXcb"),
        ("${P//b/X}", {"P": "abcb"}, "aXcX"),
        ("${P#a.}", {"P": "abc"}, "abc"),  # . is literal in a glob
    ],
)
def test_substitution_table(text: str, env: dict[str, str], result: str) -> None:
    assert word(text, env) == result


@pytest.mark.parametrize(
    ("text", "env", "match"),
    [
        ("${V:?must be set}", {}, "V: must be set"),
        ("${V?}", {}, "V: is not allowed to be unset"),
        ("${V:?}", EMPTY, "V: is not allowed to be empty"),
        ("${V?}", EMPTY, None),
        ("${}", {}, "bad substitution"),
        ("${:x}", {}, "bad substitution"),
        ("${V", {}, "missing '}'"),
        ("${V:-x", {}, "missing '}'"),
        ("${V:x}", {}, r"unsupported modifier \(:x\)"),
        ("${V:#x}", {}, r"unsupported modifier \(:#\)"),
        ('"abc', {}, "matching double-quote"),
        ("'abc", {}, "matching single-quote"),
    ],
)
def test_substitution_errors(text: str, env: dict[str, str], match: str | None) -> None:
    if match is None:
        assert word(text, env) == ""
        return
    with pytest.raises(DockerfileError, match=match):
        word(text, env)


def test_backtick_escape_in_substitution() -> None:
    assert word("`$V", SET, escape="`") == "$V"
    assert word("C:\\$V", SET, escape="`") == "C:\\val"


@pytest.mark.parametrize(
    ("text", "env", "words"),
    [
        ("a  b", {}, ["a", "b"]),
        ('"a b" c', {}, ["a b", "c"]),
        ("x$S", {"S": " 1  2 "}, ["x", "1", "2"]),
        ('"$S"', {"S": " 1  2 "}, [" 1  2 "]),
        ("a\\ b", {}, ["a b"]),
        ('"" x', {}, ["x"]),
        ("'$S' ${S:-d}", {}, ["$S", "d"]),
    ],
)
def test_split_words(text: str, env: dict[str, str], words: list[str]) -> None:
    assert split_words(text, env) == words


def test_substitute_keeps_quotes_and_escapes() -> None:
    assert substitute("'$V' \"$V\" \\$V $V", SET) == "'$V' \"val\" \\$V val"
    with pytest.raises(UsageError, match="bad substitution"):
        substitute("${}", {})


def test_heredoc_details_as_buildkit() -> None:
    run = one("RUN 3<<A\n# kept, not a comment\nA\n")
    assert run.heredocs == (Heredoc("A", "# kept, not a comment\n", True),)
    assert one("RUN <<eo\\'f\nx\neo'f\n").heredocs == (Heredoc("eo'f", "x\n", True),)
    assert one("RUN <<'one two'\nx\none two\n").heredocs == (Heredoc("one two", "x\n", False),)
    assert one("RUN <<- EOF\n").heredocs == ()  # BuildKit: `<<-` and `EOF` are two words
