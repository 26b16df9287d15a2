"""Guard expressions: small Jinja2 expressions over case data, evaluated in a sandbox.

A guard such as `application_complete and quantity <= 100` or
`outcome.decision_approval == 'rejected'` is compiled once per process version with
Jinja2's `SandboxedEnvironment.compile_expression`; Python's `eval` is never used. The
sandbox refuses access to private attributes and unsafe callables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError, nodes
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

logger = logging.getLogger(__name__)

_ENVIRONMENT = SandboxedEnvironment()

# Names every guard may use besides the case fields.
GUARD_NAMES: frozenset[str] = frozenset({"outcome", "today"})


class ExpressionError(Exception):
    """The expression does not parse or compile; `detail` says why in English."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class Guard:
    source: str
    names: frozenset[str]
    _evaluate: Any

    def __call__(self, context: Mapping[str, Any]) -> bool:
        try:
            return bool(self._evaluate(**context))
        except (TypeError, ValueError, ArithmeticError, TemplateError) as error:
            # A comparison with a field that is not filled in yet (None > 5) is false, not a crash.
            logger.warning("Guard %r evaluated as false after %s: %s", self.source, type(error).__name__, error)
            return False


def _referenced_names(source: str) -> frozenset[str]:
    parser = Parser(_ENVIRONMENT, source, state="variable")
    expression = parser.parse_expression()
    if not parser.stream.eos:
        token = parser.stream.current
        raise ExpressionError(f"unexpected '{token.value}' after the end of the expression")
    return frozenset(node.name for node in expression.find_all(nodes.Name) if node.ctx == "load")


def compile_guard(source: str) -> Guard:
    """Compile a guard expression or raise `ExpressionError`."""
    if not source.strip():
        raise ExpressionError("the expression is empty")
    try:
        names = _referenced_names(source)
        evaluate = _ENVIRONMENT.compile_expression(source, undefined_to_none=True)
    except ExpressionError:
        raise
    except TemplateError as error:
        raise ExpressionError(error.message or type(error).__name__) from None
    return Guard(source=source, names=names, _evaluate=evaluate)
