"""The restricted evaluator for everything a diagram asks the engine to compute.

Gateway conditions, script tasks, pre/post scripts, timer expressions, service-task
parameters and DMN cells are Python text written by process owners. They run here,
never through `eval`/`exec` with full builtins:

* RestrictedPython compiles them: no imports, no names or attributes starting with an
  underscore, attribute and item access through guards, no `str.format`.
* The builtins are a small safe set (`len`, `min`, `max`, `sum`, `round`, `sorted`, ...).
* Operations that can allocate without bound in one C call (`**`, `*`, `<<`, `range`,
  `list`) go through guards that refuse huge results.
* A time limit stops loops and comprehensions that run too long.

Compiled code is cached per source text, so a condition is compiled once per process.
"""

from __future__ import annotations

import ast
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any

from RestrictedPython.compile import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Eval import default_guarded_getitem
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr,
)
from RestrictedPython.transformer import RestrictingNodeTransformer

from engine.errors import EvaluationTimeoutError, ExpressionError

#: Default wall-clock limit for one evaluation, in seconds.
DEFAULT_TIME_LIMIT = 1.0
#: Largest sequence (string, list, bytes) an expression may build in one operation.
MAX_SEQUENCE_LENGTH = 1_000_000
#: Largest integer, in bits, an expression may build with ** or <<.
MAX_INT_BITS = 4096
#: Largest range() an expression may iterate.
MAX_RANGE = 100_000


def _guarded_pow(base: Any, exp: Any, mod: Any = None) -> Any:
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        bits = exp * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise ValueError(
                f"{base} ** {exp} would have about {int(bits)} bits; limit is {MAX_INT_BITS}"
            )
    if mod is None:
        return base**exp
    return pow(base, exp, mod)


def _size(value: Any) -> int | None:
    if isinstance(value, str | bytes | list | tuple | bytearray):
        return len(value)
    return None


def _guarded_mul(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        size = _size(seq)
        if size is not None and isinstance(count, int) and size * count > MAX_SEQUENCE_LENGTH:
            raise ValueError(
                f"repeating a sequence of {size} items {count} times exceeds "
                f"{MAX_SEQUENCE_LENGTH:,} items"
            )
    return left * right


def _guarded_lshift(left: Any, right: Any) -> Any:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right + left.bit_length() > MAX_INT_BITS
    ):
        raise ValueError(f"{left} << {right} exceeds {MAX_INT_BITS} bits")
    return left << right


def _guarded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise ValueError(f"range of {len(result):,} items exceeds {MAX_RANGE:,}")
    return result


def _sized(fn: Callable[[Iterable[Any]], Any]) -> Callable[..., Any]:
    def guarded(*args: Any) -> Any:
        if args:
            size = getattr(args[0], "__len__", None)
            if size is not None and size() > MAX_SEQUENCE_LENGTH:
                raise ValueError(f"sequence of {size():,} items exceeds {MAX_SEQUENCE_LENGTH:,}")
        return fn(*args)

    guarded.__name__ = getattr(fn, "__name__", "guarded")
    return guarded


_BINOP_GUARDS = {
    ast.Pow: "_guarded_pow_",
    ast.Mult: "_guarded_mul_",
    ast.LShift: "_guarded_lshift_",
}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus guards on operators that allocate without bound."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:  # noqa: N802 - ast visitor name
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(
            func=ast.Name(id=guard, ctx=ast.Load()), args=[node.left, node.right], keywords=[]
        )
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:  # noqa: N802
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None or not isinstance(node.target, ast.Name):
            return node
        value = ast.Call(
            func=ast.Name(id=guard, ctx=ast.Load()),
            args=[ast.Name(id=node.target.id, ctx=ast.Load()), node.value],
            keywords=[],
        )
        assign = ast.Assign(targets=[node.target], value=value)
        return ast.fix_missing_locations(ast.copy_location(assign, node))


def _build_builtins() -> dict[str, Any]:
    names = dict(safe_builtins)
    for unsafe in ("__build_class__", "id", "hash", "callable", "issubclass", "range"):
        names.pop(unsafe, None)
    names.update(
        {
            "range": _guarded_range,
            "list": _sized(list),
            "tuple": _sized(tuple),
            "set": _sized(set),
            "frozenset": _sized(frozenset),
            "dict": dict,
            "sorted": _sized(sorted),
            "reversed": reversed,
            "enumerate": enumerate,
            "zip": zip,
            "map": map,
            "filter": filter,
            "min": min,
            "max": max,
            "sum": sum,
            "any": any,
            "all": all,
            "len": len,
            "abs": abs,
            "round": round,
            "Decimal": Decimal,
        }
    )
    return names


_BUILTINS = _build_builtins()


def _base_globals() -> dict[str, Any]:
    return {
        "__builtins__": _BUILTINS,
        "_getattr_": safer_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_guarded_pow_": _guarded_pow,
        "_guarded_mul_": _guarded_mul,
        "_guarded_lshift_": _guarded_lshift,
    }


_GLOBALS_TEMPLATE = _base_globals()
_RESERVED = frozenset(_GLOBALS_TEMPLATE)


@lru_cache(maxsize=4096)
def _compile(source: str, mode: str) -> CodeType:
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(source, filename="<diagram>", policy=_Policy)
    if result.errors or result.code is None:
        raise ExpressionError(
            f"expression refused: {'; '.join(result.errors) or 'it does not compile'}",
            source,
            hint="Diagram expressions may not import, use names starting with '_' or reach "
            "into Python internals.",
        )
    code: CodeType = result.code
    return code


def check(source: str, mode: str = "eval") -> None:
    """Compile `source` without running it; raise ExpressionError if it is refused."""
    try:
        _compile(source, mode)
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", source) from exc


class _Deadline:
    """A trace function that interrupts Python code running past a deadline.

    Loops and comprehensions produce line events on every iteration, so anything that
    runs long in Python frames is stopped; single C calls are bounded by the guards.
    """

    def __init__(self, limit: float) -> None:
        self.deadline = time.monotonic() + limit
        self.limit = limit

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"evaluation exceeded {self.limit:g} s")
        return self


class Evaluator:
    """Evaluate diagram expressions and run diagram scripts in a restricted namespace."""

    def __init__(self, time_limit: float = DEFAULT_TIME_LIMIT) -> None:
        self.time_limit = time_limit
        self._local = threading.local()

    def evaluate(self, source: str, names: Mapping[str, Any]) -> Any:
        """Return the value of the expression `source` with `names` in scope."""
        code = self._code(source.strip(), "eval")
        scope = dict(_GLOBALS_TEMPLATE)
        scope.update(names)
        return self._run(code, scope, source)

    def execute(self, source: str, names: dict[str, Any]) -> None:
        """Run the script `source`; variables it assigns or deletes update `names`."""
        code = self._code(source, "exec")
        scope = dict(_GLOBALS_TEMPLATE)
        scope.update(names)
        self._run(code, scope, source)
        for key in [k for k in names if k not in scope]:
            del names[key]
        for key, value in scope.items():
            if key in _RESERVED or key.startswith("_") or callable(value):
                continue
            names[key] = value

    def _code(self, source: str, mode: str) -> CodeType:
        try:
            return _compile(source, mode)
        except SyntaxError as exc:
            raise ExpressionError(f"syntax error: {exc.msg}", source) from exc

    def _run(self, code: CodeType, scope: dict[str, Any], source: str) -> Any:
        previous = sys.gettrace()
        nested = getattr(self._local, "active", False)
        if not nested:
            self._local.active = True
            sys.settrace(_Deadline(self.time_limit))
        try:
            return eval(code, scope)  # noqa: S307 - restricted code, guarded globals
        except TimeoutError as exc:
            raise EvaluationTimeoutError(
                f"expression stopped after {self.time_limit:g} s",
                source,
                hint="Simplify the expression; diagram expressions must be quick.",
            ) from exc
        finally:
            if not nested:
                sys.settrace(previous)
                self._local.active = False
