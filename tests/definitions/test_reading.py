"""Reading definition files: the repository's own tree, and bytes or YAML that cannot be read (SF1xx)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from engine.definitions.loader import load_definitions
from engine.definitions.source import MAX_FILE_BYTES, MAX_NODES
from tests.definitions.conftest import LoadProcess
from tests.definitions.helpers import DEMO_FILE, HEADER, demo, formatted, single, write
from tests.helpers import CITES_IMPORT, FIRST_OF_A_KIND, REPOSITORY


def test_first_of_a_kind_processes_load_without_problems() -> None:
    loaded = load_definitions(REPOSITORY, [REPOSITORY / path for path in FIRST_OF_A_KIND])

    assert formatted(loaded) == []
    assert sorted(loaded.skeletons) == ["afgoerelse", "ordningssag", "puljesag", "simpel", "tilskud", "tilsyn"]
    assert sorted(loaded.compiled) == [
        "cites-import",
        "klap-aarligt-tilsyn",
        "klap-ordningssag",
        "klap-tilladelse",
        "natura2000-puljesag",
        "natura2000-sammenhaengende-arealer",
    ]
    assert loaded.files == [
        "skeletons/afgoerelse.yaml",
        "skeletons/ordningssag.yaml",
        "skeletons/puljesag.yaml",
        "skeletons/simpel.yaml",
        "skeletons/tilskud.yaml",
        "skeletons/tilsyn.yaml",
        "processes/afgoerelse/cites-import.yaml",
        "processes/afgoerelse/klap-tilladelse.yaml",
        "processes/ordningssag/klap-ordningssag.yaml",
        "processes/puljesag/natura2000-puljesag.yaml",
        "processes/tilskud/natura2000-sammenhaengende-arealer.yaml",
        "processes/tilsyn/klap-aarligt-tilsyn.yaml",
    ]


def test_repository_compiles_cites_import() -> None:
    compiled = load_definitions(REPOSITORY, [REPOSITORY / CITES_IMPORT]).compiled["cites-import"]

    assert compiled.initial_phase == "receipt"
    assert list(compiled.phases) == [
        "receipt",
        "screening",
        "awaiting_information",
        "fact_finding",
        "hoering",
        "draft",
        "partshoering",
        "approval",
        "decision",
        "closing",
        "closed",
    ]
    assert compiled.step("species_lookup") is not None
    assert len(compiled.content_hash) == 64


def test_minimal_process_compiles(load_process: LoadProcess) -> None:
    loaded = load_process(HEADER)

    assert formatted(loaded) == []
    assert sorted(loaded.compiled) == ["demo"]


def test_yaml_syntax_error(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("case_title: a: b\n")))

    assert problem.code == "SF100"
    assert problem.format("en") == (
        f"{DEMO_FILE}:8:14: SF100 YAML syntax error: mapping values are not allowed here. "
        "Check indentation, colons and quotes on this line and the line above."
    )


def test_yaml_unclosed_flow_mapping(load_process: LoadProcess) -> None:
    # ruamel reports the place where it gave up: the end of the file, on line 9.
    problem = single(load_process(demo("description: {da: Demo, en: Demo\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:1: SF100 YAML syntax error: expected ',' or '}}', but got '<stream end>' "
        "(while parsing a flow mapping). Check indentation, colons and quotes on this line and the line above."
    )


def test_duplicate_key_names_both_lines(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("title: {da: Igen, en: Again}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:1: SF101 The key 'title' appears twice; first on line 3. Delete or rename one of them."
    )


def test_duplicate_nested_key(load_process: LoadProcess) -> None:
    text = demo(
        """\
        description:
          da: En
          en: One
          da: To
        """
    )
    problem = single(load_process(text))

    assert problem.code == "SF101"
    assert str(problem.location) == f"{DEMO_FILE}:11:3"
    assert problem.text.en == "The key 'da' appears twice; first on line 9."


def test_tab_in_indentation(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("description:\n\tda: x\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:1: SF110 Tab character in the indentation. YAML is indented with spaces; replace the tab."
    )


def test_byte_order_mark(load_process: LoadProcess) -> None:
    problem = single(load_process(b"\xef\xbb\xbf" + HEADER.encode()))

    assert problem.format("en") == (
        f"{DEMO_FILE}:1:1: SF109 The file starts with a byte order mark (BOM). Save the file as UTF-8 without a BOM."
    )


def test_bytes_that_are_not_utf8(load_process: LoadProcess) -> None:
    # Latin-1 "ø" (0xF8) on line 8, after "# s" (3 bytes): column 4.
    content = HEADER.encode() + b"# s\xf8\n"
    problem = single(load_process(content))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:4: SF102 The file is not valid UTF-8 (byte {len(HEADER.encode()) + 3}). "
        "Save the file as UTF-8 in your editor."
    )


def test_nul_character_position(load_process: LoadProcess) -> None:
    # The NUL byte is on line 8, after "description: {da: a" (19 characters): column 20.
    problem = single(load_process(demo("description: {da: a\x00b, en: c}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:20: SF100 YAML syntax error: the character U+0000 is not allowed in a YAML file. "
        "Check indentation, colons and quotes on this line and the line above."
    )
    assert problem.text.da == "YAML-syntaksfejl: tegnet U+0000 må ikke stå i en YAML-fil."


def test_own_yaml_details_in_danish(load_process: LoadProcess) -> None:
    loaded = load_process(demo("base: &base [1]\ndescription:\n  <<: *base\nvalid_from: 2024-02-30\n"))

    assert [problem.text.da for problem in loaded.problems if problem.code == "SF100"] == [
        "YAML-syntaksfejl: '<<' skal flette en mapping.",
        "YAML-syntaksfejl: '2024-02-30' er ikke en gyldig dato.",
    ]


def test_empty_file(load_process: LoadProcess) -> None:
    problem = single(load_process(""))

    assert problem.format("en") == f"{DEMO_FILE}:1:1: SF103 The file is empty. Write a definition, or delete the file."


def test_file_with_only_comments_is_empty(load_process: LoadProcess) -> None:
    problem = single(load_process("# nothing yet\n\n"))

    assert problem.code == "SF103"


def test_file_over_size_limit(load_process: LoadProcess) -> None:
    padding = "#" * (MAX_FILE_BYTES - len(HEADER.encode())) + "\n"
    problem = single(load_process(HEADER + padding))

    assert problem.format("en") == (
        f"{DEMO_FILE}:1:1: SF104 The file has {MAX_FILE_BYTES + 1} bytes; the limit is {MAX_FILE_BYTES} bytes. "
        "Split the definition, or move data out of the YAML file."
    )


def test_file_at_size_limit_is_read(load_process: LoadProcess) -> None:
    padding = "#" * (MAX_FILE_BYTES - len(HEADER.encode()) - 1) + "\n"
    loaded = load_process(HEADER + padding)

    assert formatted(loaded) == []


def test_number_with_leading_zero(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fee:
          amount: 0450
          label: {da: Gebyr, en: Fee}
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:9:11: SF107 The number 0450 has a leading zero, which YAML drops. "
        "The key takes a number; write it without leading zeros: 450."
    )


def test_leading_zero_where_text_is_expected(load_process: LoadProcess) -> None:
    # An unquoted postcode-like value is both a dropped zero and a number where text belongs.
    text = HEADER.replace('classification: "01.02.03"', "classification: 0102")
    loaded = load_process(text)

    assert [problem.code for problem in loaded.problems] == ["SF107", "SF204"]
    assert {str(problem.location) for problem in loaded.problems} == {f"{DEMO_FILE}:7:17"}


def test_unsupported_tag(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("case_title: !python/name:os.system x\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:13: SF106 The YAML tag '!python/name:os.system' is not supported. "
        "Remove the tag (!...) and write a plain value."
    )


def test_tag_on_mapping(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("description: !custom {da: Demo, en: Demo}\n")))

    assert problem.format("en") == (
        f"{DEMO_FILE}:8:14: SF106 The YAML tag '!custom' is not supported. "
        "Remove the tag (!...) and write a plain value."
    )


def test_standard_tags_are_read(load_process: LoadProcess) -> None:
    loaded = load_process(demo("description: !!map {da: !!str 12, en: Demo}\n"))

    assert formatted(loaded) == []
    description = loaded.compiled["demo"].definition.description
    assert description is not None
    assert description.da == "12"


def test_alias_bomb_stops_at_node_limit(load_process: LoadProcess) -> None:
    # Nine levels of ten aliases each would expand to 10**9 nodes.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        alias = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([alias] * 10)}]")
    started = time.monotonic()
    problem = single(load_process("\n".join(lines) + "\n"))
    elapsed = time.monotonic() - started

    assert problem.format("en") == (
        f"{DEMO_FILE}:1:1: SF105 The file expands to more than {MAX_NODES} YAML nodes (anchors and aliases). "
        "Use fewer aliases (*name); write the values out."
    )
    assert elapsed < 10, f"stopping at the node limit took {elapsed:.1f} s"


def test_merge_key_is_read(load_process: LoadProcess) -> None:
    text = demo(
        """\
        roles:
          inspector: &role
            label: {da: Inspektør, en: Inspector}
          auditor:
            <<: *role
        """
    )
    loaded = load_process(text)

    assert formatted(loaded) == []
    assert loaded.compiled["demo"].definition.roles["auditor"].label.en == "Inspector"


def test_top_level_list(load_process: LoadProcess) -> None:
    problem = single(load_process("- process: demo\n"))

    assert problem.format("en") == (
        f"{DEMO_FILE}:1:1: SF108 The file must contain a YAML mapping at the top. "
        "Start the file with 'process: <id>' or 'skeleton: <id>'."
    )


def test_document_without_kind(load_process: LoadProcess) -> None:
    problem = single(load_process("name: demo\n"))

    assert problem.format("en") == (
        f"{DEMO_FILE}:1:1: SF111 The file is not a process definition. "
        "The first key must be 'process:' (files under processes/) or 'skeleton:' (under skeletons/)."
    )


def test_skeleton_under_processes(load_process: LoadProcess) -> None:
    problem = single(load_process("skeleton: other\n"))

    assert problem.code == "SF111"
    assert problem.text.en == "The file is not a process definition."


def test_process_under_skeletons(root: Path) -> None:
    write(root, "skeletons/demo.yaml", HEADER)
    problem = single(load_definitions(root))

    assert problem.format("en") == (
        "skeletons/demo.yaml:1:1: SF111 The file is not a skeleton definition. "
        "The first key must be 'process:' (files under processes/) or 'skeleton:' (under skeletons/)."
    )


def test_explicit_paths_limit_processes(root: Path) -> None:
    first = write(root, "processes/afgoerelse/first.yaml", HEADER.replace("process: demo", "process: first"))
    write(root, "processes/afgoerelse/second.yaml", "process: [broken\n")
    loaded = load_definitions(root, [first])

    assert formatted(loaded) == []
    assert sorted(loaded.compiled) == ["first"]
    assert loaded.files == ["skeletons/afgoerelse.yaml", "processes/afgoerelse/first.yaml"]


def test_problems_in_danish(load_process: LoadProcess) -> None:
    problem = single(load_process(demo("title: {da: Igen, en: Again}\n")))

    assert problem.format("da") == (
        f"{DEMO_FILE}:8:1: SF101 Nøglen 'title' står to gange; første gang på linje 3. Slet eller omdøb den ene."
    )


def test_leading_zero_where_text_is_meant(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          unit:
            type: enum
            label: {da: Enhed, en: Unit}
            options:
              - value: 0450
                label: {da: Kode, en: Code}
        """
    )
    loaded = load_process(text)
    leading_zero = [problem for problem in loaded.problems if problem.code == "SF107"]

    assert len(leading_zero) == 1, formatted(loaded)
    assert leading_zero[0].hint is not None
    assert leading_zero[0].hint.en == "The key takes text; put quotes around the value: '0450'."
    assert leading_zero[0].hint.da == "Nøglen tager tekst; sæt anførselstegn om værdien: '0450'."


def test_leading_zero_in_number_key(load_process: LoadProcess) -> None:
    text = demo(
        """\
        fields:
          count:
            type: integer
            label: {da: Antal, en: Count}
            min: 00
        """
    )
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:12:10: SF107 The number 00 has a leading zero, which YAML drops. "
        "The key takes a number; write it without leading zeros: 0."
    )


def test_leading_zero_where_any_value_is_allowed(load_process: LoadProcess) -> None:
    text = demo("fields:\n  postcode:\n    type: postcode\n    label: {da: Postnr., en: Postcode}\n    example: 0450\n")
    problem = single(load_process(text))

    assert problem.hint is not None
    assert problem.hint.en == (
        "Write the number without leading zeros if it is a number; put quotes around codes and postcodes: '0450'."
    )


def test_date_that_does_not_exist(load_process: LoadProcess) -> None:
    text = demo("fields:\n  expiry:\n    type: date\n    label: {da: Udløb, en: Expiry}\n    example: 2024-13-45\n")
    problem = single(load_process(text))

    assert problem.format("en") == (
        f"{DEMO_FILE}:12:14: SF100 YAML syntax error: '2024-13-45' is not a valid date. Write a date that exists as "
        "YYYY-MM-DD, or put quotes around the value if it is text: '2024-13-45'."
    )
    assert problem.hint is not None
    assert problem.hint.da == (
        "Skriv en dato, der findes, som ÅÅÅÅ-MM-DD, eller sæt anførselstegn om værdien, hvis den er tekst: "
        "'2024-13-45'."
    )


def test_root_without_processes_folder(tmp_path: Path) -> None:
    shutil.copytree(REPOSITORY / "skeletons", tmp_path / "skeletons")

    loaded = load_definitions(tmp_path)

    assert formatted(loaded) == []
    assert loaded.compiled == {}
