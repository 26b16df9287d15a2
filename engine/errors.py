"""The errors Sagsflow raises on purpose.

    SagsflowError                  base; carries a stable `code` and a bilingual `text`
    ├── DefinitionError            YAML definitions that do not load, resolve or validate
    ├── ConfigurationError         settings or environment that cannot work
    ├── ProcessFault               a deployed process failed while running; not the client's fault
    └── CaseError                  a command on a case or a request that cannot be carried out
        ├── BadRequest        400  malformed request
        ├── Unauthorized      401  missing or unknown token
        ├── Forbidden         403  authenticated, but not allowed (role, four eyes)
        ├── NotFound          404  unknown process, case, step or document
        ├── Conflict          409  stale version, step not active, duplicate
        └── InvalidInput      422  field values that fail validation, one entry per field

The CLI and the API catch `SagsflowError` in one place each and render the text in
the user's language; anything else is a bug and is logged with its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from engine.i18n import Language, Text

if TYPE_CHECKING:
    from engine.definitions.problems import Problem


class SagsflowError(Exception):
    """Base of every error that Sagsflow raises on purpose."""

    default_code: ClassVar[str] = "error"

    def __init__(self, text: Text, *, code: str | None = None, **context: Any) -> None:
        self.text = text
        self.code = code or self.default_code
        self.context = context
        super().__init__(text.en)

    def message(self, language: Language) -> str:
        return self.text.get(language)


class ConfigurationError(SagsflowError):
    default_code = "configuration"


class ProcessFault(SagsflowError):
    """A deployed process failed at run time (e.g. a letter template); the command was rolled back."""

    default_code = "process_fault"


class DefinitionError(SagsflowError):
    """One or more definition files are invalid; `problems` lists every one of them."""

    default_code = "invalid_definition"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [problem for problem in problems if problem.severity == "error"]
        super().__init__(
            Text(
                da=f"{len(errors)} fejl i definitionerne. Kør 'sagsflow validate' for detaljer.",
                en=f"{len(errors)} errors in the definitions. Run 'sagsflow validate' for details.",
            )
        )


@dataclass(frozen=True)
class FieldError:
    """One invalid value in a request: `field` is a dotted path such as `data.quantity`."""

    field: str
    code: str
    text: Text
    hint: Text | None = None

    def as_dict(self, language: Language) -> dict[str, str]:
        result = {"field": self.field, "code": self.code, "message": self.text.get(language)}
        if self.hint is not None:
            result["hint"] = self.hint.get(language)
        return result


class CaseError(SagsflowError):
    """A command or request that cannot be carried out; nothing was changed."""

    status: ClassVar[int] = 400
    default_code = "bad_request"

    def __init__(
        self,
        text: Text,
        *,
        code: str | None = None,
        field: str | None = None,
        hint: Text | None = None,
        **context: Any,
    ) -> None:
        super().__init__(text, code=code, **context)
        self.field = field
        self.hint = hint


class BadRequest(CaseError):
    status = 400
    default_code = "bad_request"


class Unauthorized(CaseError):
    status = 401
    default_code = "unauthorized"


class Forbidden(CaseError):
    status = 403
    default_code = "forbidden"


class NotFound(CaseError):
    status = 404
    default_code = "not_found"


class Conflict(CaseError):
    status = 409
    default_code = "conflict"


class InvalidInput(CaseError):
    """Field values failed validation; `errors` holds one entry per offending field."""

    status = 422
    default_code = "invalid_input"

    def __init__(self, errors: list[FieldError], **context: Any) -> None:
        self.errors = errors
        fields = ", ".join(error.field for error in errors)
        super().__init__(
            Text(
                da=f"Ugyldige oplysninger i {len(errors)} felt(er): {fields}.",
                en=f"Invalid values in {len(errors)} field(s): {fields}.",
            ),
            field=errors[0].field if errors else None,
            **context,
        )


@dataclass
class FieldErrors:
    """Collects field errors so a command can report all of them at once."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field: str, code: str, text: Text, hint: Text | None = None) -> None:
        self.errors.append(FieldError(field, code, text, hint))

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)
