"""Guard expressions: small Jinja2 expressions over case data, evaluated in a sandbox.

A guard such as `application_complete and quantity <= 100` or
`outcome.decision_approval == 'rejected'` is compiled once per process version with
Jinja2's `SandboxedEnvironment.compile_expression`; Python's `eval` is never used. The
sandbox refuses access to private attributes and unsafe callables.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from jinja2 import TemplateError, nodes
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from engine.i18n import Text

logger = logging.getLogger(__name__)

N = TypeVar("N", bound=nodes.Node)

_ENVIRONMENT = SandboxedEnvironment()

# Names every guard may use besides the case fields.
GUARD_NAMES: frozenset[str] = frozenset({"outcome", "today"})


class ExpressionError(Exception):
    """The expression does not parse or compile; `detail` gives the reason in Danish and English."""

    def __init__(self, detail: Text) -> None:
        super().__init__(detail.en)
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


class LazyGuard:
    """A guard of a deployed version, compiled when it is first evaluated.

    Compiling a guard costs about a millisecond, and a process has dozens of them, so a
    server that compiled all of them for 250 processes at start-up would wait seconds for
    guards most requests never evaluate. Validation compiles every guard eagerly with
    `compile_guard`, so a deployed guard compiles.
    """

    __slots__ = ("_guard", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._guard: Guard | None = None

    @property
    def guard(self) -> Guard:
        # Two threads may compile the same guard at once; both get an equal result.
        if self._guard is None:
            self._guard = compile_guard(self.source)
        return self._guard

    @property
    def names(self) -> frozenset[str]:
        return self.guard.names

    def __call__(self, context: Mapping[str, Any]) -> bool:
        return self.guard(context)


def _jinja_detail(error: TemplateError) -> Text:
    # Jinja2's messages are English, so the Danish text names Jinja2 as their source.
    message = error.message or type(error).__name__
    return Text(f"Jinja2 melder: {message}", message)


def parse_guard(source: str) -> nodes.Expr:
    """Parse a guard into its Jinja2 expression node, or raise `ExpressionError`."""
    if not source.strip():
        raise ExpressionError(Text("udtrykket er tomt", "the expression is empty"))
    try:
        parser = Parser(_ENVIRONMENT, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise ExpressionError(
                Text(
                    f"uventet '{token.value}' efter udtrykkets slutning",
                    f"unexpected '{token.value}' after the end of the expression",
                )
            )
    except TemplateError as error:
        raise ExpressionError(_jinja_detail(error)) from None
    return expression


def find_nodes(node: nodes.Node, node_type: type[N]) -> Iterator[N]:
    """Yield `node` and every node under it of `node_type`; Jinja2's `find_all` skips `node` itself."""
    if isinstance(node, node_type):
        yield node
    yield from node.find_all(node_type)


def named_lookups(node: nodes.Node) -> Iterator[tuple[nodes.Expr, str, int]]:
    """Yield (looked-up object, name, line) for `x.name` and `x['name']` anywhere in `node`."""
    for attribute in find_nodes(node, nodes.Getattr):
        yield attribute.node, attribute.attr, attribute.lineno
    for item in find_nodes(node, nodes.Getitem):
        if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            yield item.node, item.arg.value, item.lineno


def private_accesses(node: nodes.Node) -> list[tuple[str, int]]:
    """List attribute and constant-key lookups whose name starts with `_`, with their lines.

    Such names reach into Python internals (`x.__class__`, `x['__dict__']`). The sandbox
    rejects them only when a guard or template runs, so validation rejects them earlier.
    """
    found = [(name, line) for _, name, line in named_lookups(node) if name.startswith("_")]
    return sorted(found, key=lambda access: access[1])


def outcome_step(node: nodes.Node) -> str | None:
    """Return the step id when `node` is `outcome.x` or `outcome['x']`, else None."""
    if isinstance(node, nodes.Getattr):
        target, name = node.node, node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        target, name = node.node, node.arg.value
    else:
        return None
    return name if isinstance(target, nodes.Name) and target.name == "outcome" else None


def outcome_steps(expression: nodes.Node) -> frozenset[str]:
    """Return the step ids that an expression reads from `outcome`, as `outcome.x` or `outcome['x']`."""
    return frozenset(
        name
        for target, name, _ in named_lookups(expression)
        if isinstance(target, nodes.Name) and target.name == "outcome"
    )


@functools.lru_cache(maxsize=8192)
def compile_guard(source: str) -> Guard:
    """Compile a guard expression or raise `ExpressionError`.

    A guard holds no state, so the processes of a skeleton share the compiled guards of
    the skeleton's steps: each distinct expression is compiled once per run.

    Names starting with `_` are not rejected here, because versions deployed before that
    check must still load. Validation rejects them, and so does the sandbox at run time.
    """
    expression = parse_guard(source)
    names = frozenset(node.name for node in find_nodes(expression, nodes.Name) if node.ctx == "load")
    try:
        evaluate = _ENVIRONMENT.compile_expression(source, undefined_to_none=True)
    except TemplateError as error:
        raise ExpressionError(_jinja_detail(error)) from None
    return Guard(source=source, names=names, _evaluate=evaluate)
