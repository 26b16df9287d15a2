"""Checks of a process's `scheme:` section against the processes it names (SF340 to SF343).

A scheme case (ordningssag) names two other processes: the one whose cases are its
members (`members`) and the one its bulk run creates request cases on (`requests`).
These checks need both resolved, so the loader runs them after `validate_resolved` and
passes `lookup`, which resolves another process by id. Every problem is reported in the
scheme process's own file, at the key that causes it.

The bulk run (`engine/runtime/schemes.py`) writes a request case's first phase itself,
without running the case's commands, so the request process must have a shape it can
write: its first phase contains exactly one `report` step and otherwise only letters.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable

from engine.definitions.fields import FIELD_TYPES
from engine.definitions.model import AUTOMATIC_KINDS, ResolvedField, ResolvedProcess, SchemeDef
from engine.definitions.problems import Location, Problem, known_names, make_problem
from engine.definitions.resolve import SourceMap
from engine.i18n import Text

# Request fields that the bulk run fills itself, with the type each must have.
_SYSTEM_TARGETS = (("period_field", "integer"), ("member_field", "text"), ("scheme_field", "text"))

_MEMBER_SIDE = Text("medlemmernes proces, scheme.members", "the members' process, scheme.members")
_REQUEST_SIDE = Text("anmodningernes proces, scheme.requests", "the requests' process, scheme.requests")


def check_scheme(
    process: ResolvedProcess,
    sources: SourceMap,
    lookup: Callable[[str], ResolvedProcess | None],
    known_processes: Iterable[str],
) -> list[Problem]:
    """Check `process.scheme` against the member and request processes that `lookup` resolves."""
    scheme = process.scheme
    if scheme is None:
        return []
    checker = _SchemeChecker(process, scheme, sources)
    members = checker.named_process("members", scheme.members, lookup, known_processes)
    requests = checker.named_process("requests", scheme.requests, lookup, known_processes)
    checker.check_reply_by()
    if members is not None and requests is not None:
        checker.check_fields(members, requests)
    if requests is not None:
        checker.check_system_targets(requests)
        checker.check_request_shape(requests)
        checker.check_party_and_required(requests)
    return checker.problems


class _SchemeChecker:
    def __init__(self, process: ResolvedProcess, scheme: SchemeDef, sources: SourceMap) -> None:
        self.process = process
        self.scheme = scheme
        self.sources = sources
        self.problems: list[Problem] = []

    def at(self, *path: str | int, use_key: bool = False) -> Location:
        return self.sources.location(("scheme",), *path, use_key=use_key)

    def invalid(self, location: Location, detail: Text, fix: Text) -> None:
        self.problems.append(make_problem("SF343", location, detail=detail, fix=fix))

    def named_process(
        self,
        key: str,
        process_id: str,
        lookup: Callable[[str], ResolvedProcess | None],
        known_processes: Iterable[str],
    ) -> ResolvedProcess | None:
        """Resolve the process that `scheme.<key>` names, or report why it cannot be used."""
        if process_id == self.process.id:
            self.invalid(
                self.at(key),
                Text(
                    f"'scheme.{key}' nævner ordningens egen proces '{process_id}'",
                    f"'scheme.{key}' names the scheme's own process '{process_id}'",
                ),
                Text(
                    "Nævn processen for tilladelserne (members) og for de årlige anmodninger (requests).",
                    "Name the process of the permits (members) and of the yearly requests (requests).",
                ),
            )
            return None
        found = lookup(process_id)
        if found is None:
            others = [name for name in known_processes if name != self.process.id]
            known = known_names(others, process_id)
            self.problems.append(make_problem("SF340", self.at(key), name=process_id, key=key, known=known))
        return found

    def check_reply_by(self) -> None:
        reply_by = self.scheme.reply_by
        # 29 February is left out too, because the deadline must exist in every year.
        days = calendar.monthrange(2023, reply_by.month)[1]
        if reply_by.day > days:
            self.invalid(
                self.at("reply_by", "day"),
                Text(
                    f"dagen {reply_by.day}. i måned {reply_by.month} findes ikke hvert år",
                    f"day {reply_by.day} of month {reply_by.month} does not exist every year",
                ),
                Text(f"Vælg en dag fra 1 til {days}.", f"Choose a day from 1 to {days}."),
            )

    def check_fields(self, members: ResolvedProcess, requests: ResolvedProcess) -> None:
        for target, source in self.scheme.fields.items():
            request_field = self.field(requests, target, _REQUEST_SIDE, self.at("fields", target, use_key=True))
            member_field = self.field(members, source, _MEMBER_SIDE, self.at("fields", target))
            if request_field is None or member_field is None:
                continue
            mismatch = _type_mismatch(request_field, member_field)
            if mismatch is not None:
                self.problems.append(
                    make_problem(
                        "SF342",
                        self.at("fields", target),
                        name=target,
                        detail=mismatch,
                        fix=Text(
                            "Knyt felter af samme type sammen; et tekstfelt kan også få felter, der gemmes som "
                            "tekst, fx CVR-numre, postnumre, koder og enum-værdier.",
                            "Map fields of the same type; a text field can also take fields stored as text, such "
                            "as CVR numbers, postcodes, codes and enum values.",
                        ),
                    )
                )

    def field(self, process: ResolvedProcess, name: str, side: Text, location: Location) -> ResolvedField | None:
        found = process.fields.get(name)
        if found is None:
            known = known_names(process.fields, name)
            self.problems.append(make_problem("SF341", location, name=name, process=process.id, side=side, known=known))
        return found

    def check_system_targets(self, requests: ResolvedProcess) -> None:
        """Check the request fields that get the period, the member's key and the scheme's journal number."""
        for key, wanted in _SYSTEM_TARGETS:
            name = getattr(self.scheme, key)
            if name is None:
                continue
            found = self.field(requests, name, _REQUEST_SIDE, self.at(key))
            if found is not None and found.type != wanted:
                self.problems.append(
                    make_problem(
                        "SF342",
                        self.at(key),
                        name=name,
                        detail=Text(
                            f"'scheme.{key}' skal pege på et felt af typen {wanted}, men '{name}' har typen "
                            f"{found.type}",
                            f"'scheme.{key}' must name a field of type {wanted}, but '{name}' has type {found.type}",
                        ),
                        fix=Text(
                            f"Nævn et felt af typen {wanted} i anmodningernes proces.",
                            f"Name a field of type {wanted} in the requests' process.",
                        ),
                    )
                )

    def check_request_shape(self, requests: ResolvedProcess) -> None:
        """Check that the bulk run can write the request case's first phase: one report step, otherwise letters."""
        location = self.at("requests")
        reports = [(phase.id, step.id) for phase in requests.phases for step in phase.steps if step.kind == "report"]
        first = requests.phases[0] if requests.phases else None
        if len(reports) != 1 or first is None or reports[0][0] != first.id:
            self.invalid(
                location,
                Text(
                    f"processen '{requests.id}' skal have præcis ét indberetningstrin (kind: report), og det skal "
                    "ligge i den første fase",
                    f"the process '{requests.id}' must have exactly one report step (kind: report), and it must "
                    "be in the first phase",
                ),
                Text(
                    "Indsæt trinnet i den første fase med insert_before eller insert_after.",
                    "Insert the step into the first phase with insert_before or insert_after.",
                ),
            )
            return
        others = [step for step in first.steps if step.kind not in ("report", "letter")]
        if others:
            listed = ", ".join(f"{step.id} ({step.kind})" for step in others)
            automatic = all(step.kind in AUTOMATIC_KINDS for step in others)
            self.invalid(
                location,
                Text(
                    f"den første fase i '{requests.id}' må kun have indberetnings- og brevtrin, men har {listed}",
                    f"the first phase of '{requests.id}' may only have report and letter steps, but has {listed}",
                ),
                Text(
                    "Flyt trinnene til en senere fase"
                    + (", for masseudsendelsen udfører ikke handlinger." if automatic else ", eller fjern dem."),
                    "Move the steps to a later phase"
                    + (", because the bulk run carries out no actions." if automatic else ", or remove them."),
                ),
            )

    def check_party_and_required(self, requests: ResolvedProcess) -> None:
        """Check that each request case gets its party's name and every application field it requires."""
        filled = set(self.scheme.fields) | {getattr(self.scheme, key) for key, _ in _SYSTEM_TARGETS} - {None}
        party_name = requests.party.name or "applicant_name"
        missing = [party_name] if party_name in requests.fields and party_name not in filled else []
        missing += [
            name
            for name, field in requests.fields.items()
            if field.required and field.source == "application" and name not in filled and name not in missing
        ]
        if missing:
            listed = ", ".join(missing)
            self.invalid(
                self.at("fields", use_key=True),
                Text(
                    f"anmodningerne får ikke felterne {listed}, som processen '{requests.id}' kræver",
                    f"the requests do not get the fields {listed}, which the process '{requests.id}' requires",
                ),
                Text(
                    "Knyt hvert af felterne til et felt i medlemmernes proces under scheme.fields.",
                    "Map each of the fields to a field of the members' process under scheme.fields.",
                ),
            )


def _stored_as_text(field_type: str) -> bool:
    """Tell whether a type stores a plain string, such as a CVR number or a code, which a text field can hold.

    A date is stored as a string too, but it is not text to the reader.
    """
    json_type = FIELD_TYPES[field_type].json_type if field_type in FIELD_TYPES else {}
    return json_type.get("type") == "string" and json_type.get("format") != "date"


def _type_mismatch(target: ResolvedField, source: ResolvedField) -> Text | None:
    """Describe why the request field `target` cannot hold the member field `source`'s value, or return None."""
    if target.type == "text" and _stored_as_text(source.type):
        return None
    if target.type != source.type:
        return Text(
            f"feltet har typen {target.type}, men medlemmernes felt har typen {source.type}",
            f"the field has type {target.type}, but the members' field has type {source.type}",
        )
    if target.type == "enum":
        allowed = {option.value for option in target.options or []}
        extra = sorted({option.value for option in source.options or []} - allowed)
        if extra:
            listed = ", ".join(extra)
            return Text(
                f"medlemmernes felt har værdierne {listed}, som feltet ikke har",
                f"the members' field has the options {listed}, which the field lacks",
            )
    return None
