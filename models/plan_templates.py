"""Rendering a plan's templates, and what validation needs to know about them beforehand. Templates are
admin-written Jinja2, so they run in Jinja's immutable sandbox: no attribute starting with "_", no mutation,
no reaching Python internals. An empty or unknown value never renders silently as "" in a message a person
reads: it fails with the token's name unless the template gives a fallback."""

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import missing

from models.plan_context import ALWAYS_PRESENT, KNOWN_TOKENS, PlanContext
from models.plans import TEMPLATE_FIELDS, Step

# Step types whose templates feed another system (a webhook's form, a sheet's row): an empty value goes out
# blank there. Every other template is read by a person, so an empty value needs a fallback.
DATA_STEP_TYPES: frozenset[str] = frozenset({"webhook", "sheet_row"})
_FALLBACK_FILTERS = frozenset({"default", "d", "fallback"})


class TemplateFault(Exception):
    """A template that does not parse, names an unknown token, or uses an empty one with no fallback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _token_of(undefined: Undefined) -> str | None:
    root = getattr(undefined._undefined_obj, "_root", None)
    return f"{root}.{undefined._undefined_name}" if root else None


class _Missing(StrictUndefined):
    """Strict when printed or iterated, but false in a test, so `{% if contact.city %}` works on an empty city;
    and it names the token it stands for."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Undefined)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = Undefined.__hash__

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:  # the sandbox's word on an unsafe attribute
            return self._undefined_hint
        token = _token_of(self)
        if token in KNOWN_TOKENS:
            return f'{token} is empty here: give a fallback, e.g. {{{{ {token} | fallback("...") }}}}'
        if token is not None:
            return f"unknown token {token}"
        if self._undefined_obj is missing:  # a root no context has: {{ clinet.first_name }}
            return f"unknown token {self._undefined_name}"
        return super()._undefined_message


class _Blank(_Missing):
    """For data steps: a known token that is empty renders as ""; anything else still fails."""

    __slots__ = ()

    def __str__(self) -> str:
        if _token_of(self) in KNOWN_TOKENS:
            return ""
        return super().__str__()


def _fallback(value: Any, fallback: str = "") -> Any:
    """Like `default`, but also for None and blank strings: `{{ contact.first_name | fallback("there") }}`."""
    if isinstance(value, Undefined) or value is None or (isinstance(value, str) and not value.strip()):
        return fallback
    return value


@lru_cache(maxsize=6)
def _environment(html: bool, blank_missing: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=_Blank if blank_missing else _Missing, autoescape=html,
                                        keep_trailing_newline=True)
    env.filters["fallback"] = _fallback
    return env


@lru_cache(maxsize=2048)
def _compiled(template: str, html: bool, blank_missing: bool) -> Template:
    return _environment(html, blank_missing).from_string(template)


def _syntax_message(error: TemplateSyntaxError) -> str:
    return f"template line {error.lineno}: {error.message}"


def template_fault(template: str) -> str | None:
    """Why a template does not compile (syntax, an unknown filter), or None."""
    try:
        _compiled(template, False, False)
    except TemplateSyntaxError as error:
        return _syntax_message(error)
    except TemplateError as error:
        return str(error)
    return None


def render(template: str, context: PlanContext, html: bool = False, blank_missing: bool = False) -> str:
    """The template filled from the context. `html` escapes values (an HTML email body); `blank_missing`
    renders an empty known token as "" (data steps). Raises TemplateFault saying what went wrong."""
    try:
        return _compiled(template, html, blank_missing).render(context.tokens())
    except TemplateSyntaxError as error:
        raise TemplateFault(_syntax_message(error)) from error
    except SecurityError as error:
        raise TemplateFault(f"not allowed in a template: {error}") from error
    except TemplateError as error:
        raise TemplateFault(str(error)) from error
    except Exception as error:  # admin-written code: whatever it raises is a fault of the template
        raise TemplateFault(f"{type(error).__name__}: {error}") from error


def render_step(step: Step, context: PlanContext) -> Step:
    """The step with every template field rendered (what would be sent): for delivery and for preview."""
    blank = step.type in DATA_STEP_TYPES
    rendered: dict[str, Any] = {}
    for name in TEMPLATE_FIELDS[step.type]:
        value = getattr(step, name)
        html = step.type == "email" and name == "body" and step.html  # type: ignore[union-attr]
        if isinstance(value, dict):
            rendered[name] = {key: render(text, context, blank_missing=blank) for key, text in value.items()}
        else:
            rendered[name] = render(value, context, html=html, blank_missing=blank)
    return step.model_copy(update=rendered)


def _parse(template: str) -> nodes.Template:
    try:
        return _environment(False, False).parse(template)
    except TemplateSyntaxError as error:
        raise TemplateFault(_syntax_message(error)) from error


def _token(node: nodes.Expr, roots: set[str]) -> tuple[str | None, list[nodes.Node]]:
    """The token a Getattr/Getitem chain reads ("contact.first_name"; just "contact" when the field is
    computed) and the computed subscripts inside it, which may read tokens themselves."""
    path: list[str | None] = []
    dynamic: list[nodes.Node] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            path.append(node.arg.value)
        else:
            path.append(None)
            dynamic.append(node.arg)
        node = node.node
    if not (isinstance(node, nodes.Name) and node.name in roots):
        return None, [node, *dynamic]
    field = path[-1] if path else None
    return (f"{node.name}.{field}" if field else node.name), dynamic


def _reads(node: nodes.Node, roots: set[str], guarded: frozenset[str]) -> Iterator[tuple[str, bool]]:
    """Every token read under `node`, with whether a fallback or an `if` on it guards that read."""
    if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
        token, inner = _token(node, roots) if not isinstance(node, nodes.Name) else (
            (node.name, []) if node.name in roots and node.ctx == "load" else (None, []))
        if token is not None:
            yield token, token in guarded
        for child in inner:
            yield from _reads(child, roots, guarded)
        return
    if isinstance(node, nodes.Filter) and node.name in _FALLBACK_FILTERS and node.node is not None:
        yield from ((token, True) for token, _ in _reads(node.node, roots, guarded))
        for child in (*node.args, *node.kwargs):
            yield from _reads(child, roots, guarded)
        return
    if isinstance(node, nodes.If | nodes.CondExpr):
        tested = frozenset(token for token, _ in _reads(node.test, roots, guarded))
        yield from ((token, True) for token in tested)
        then, otherwise = (node.body, [*node.elif_, *node.else_]) if isinstance(node, nodes.If) else (
            [node.expr1], [node.expr2] if node.expr2 is not None else [])
        for child in then:
            yield from _reads(child, roots, guarded | tested)
        for child in otherwise:
            yield from _reads(child, roots, guarded)
        return
    for child in node.iter_child_nodes():
        yield from _reads(child, roots, guarded)


def _all_reads(template: str) -> list[tuple[str, bool]]:
    ast = _parse(template)
    return list(_reads(ast, set(meta.find_undeclared_variables(ast)), frozenset()))


def tokens_used(template: str) -> set[str]:
    """The tokens a template reads, as dotted names ("contact.first_name"). Raises TemplateFault on bad syntax."""
    return {token for token, _ in _all_reads(template)}


def undeclared(template: str) -> set[str]:
    """The tokens a template reads that no context has: misspellings, fields we do not know."""
    return tokens_used(template) - KNOWN_TOKENS


def unguarded(template: str) -> set[str]:
    """Known tokens that may be empty, read with no fallback and outside an `if` on them: a message using them
    would fail to render for a contact without that value."""
    return {token for token, guarded in _all_reads(template)
            if not guarded and token in KNOWN_TOKENS and token not in ALWAYS_PRESENT}
