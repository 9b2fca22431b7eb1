"""The restricted evaluator for everything a diagram asks the engine to compute.

Gateway conditions, script tasks, pre/post scripts, timer expressions, service-task
parameters and DMN cells are Python text written by process owners. They run here,
never through `eval`/`exec` with full builtins:

* RestrictedPython compiles them: no imports, no names or attributes starting with an
  underscore, attribute and item access through guards, no `str.format`.
* The builtins are a small safe set (`len`, `min`, `max`, `sum`, `round`, `sorted`, ...);
  no imports, classes or try/except in scripts.
* Operations that can allocate or walk without bound in one C call (`**`, `*`, `+`, `<<`,
  `%`, `range`, builtins over nested containers, the str methods that grow text) go
  through guards that refuse huge results before building them.
* A time limit, checked on every line, call and loop pass, stops Python-level work that
  runs too long.
* A memory limit, checked with the time limit (at most every millisecond), stops an
  evaluation once the process's resident memory has grown by more than the limit since
  the evaluation's first millisecond: code that allocates in many small steps (each
  under the guards' limits) is stopped there, not when the machine runs out. It reads
  /proc/self/statm, so it holds on Linux; elsewhere only the time limit and the guards
  bound memory. The resident size is the whole process's, so memory another thread
  takes at the same moment counts too (a false stop, never a missed one).

Compiled code is cached per source text, so a condition is compiled once per process.
"""

from __future__ import annotations

import ast
import itertools
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any, cast

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
#: Default limit on what one evaluation may add to the process's resident memory.
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024
#: How often (seconds) a running evaluation's memory is measured; the first measure,
#: the baseline, is taken this long after it starts, so quick evaluations cost nothing.
MEMORY_CHECK_INTERVAL = 0.001
#: Largest sequence (string, list, bytes) an expression may build in one operation, and
#: the most elements a builtin may walk through in one C call (nested ones included).
MAX_SEQUENCE_LENGTH = 1_000_000
#: Largest integer, in bits, an expression may build with ** or <<.
MAX_INT_BITS = 4096
#: Largest integer, in bits, a product may have (chains of * stay quick below it).
MAX_PRODUCT_BITS = 16 * MAX_INT_BITS
#: Largest range() an expression may iterate.
MAX_RANGE = 100_000
#: Longest expression or script, in characters.
MAX_SOURCE_LENGTH = 20_000

#: Builtins that reach files, code or the interpreter: no diagram may even name them
#: (none is in the evaluator's builtins either, so naming one could only fail later).
UNAVAILABLE_NAMES = frozenset(
    {
        "open",
        "compile",
        "globals",
        "locals",
        "vars",
        "getattr",
        "setattr",
        "delattr",
        "dir",
        "help",
        "memoryview",
        "bytearray",
    }
)

_CONTAINERS = (list, tuple, set, frozenset, dict)
_TEXT = (str, bytes)
_NESTED = _CONTAINERS + _TEXT


class _LimitError(ValueError):
    """A guard refused to build a result this large (a ValueError, as Python's own)."""


def _limit_error(what: str, size: int) -> ValueError:
    return _LimitError(f"{what}: {size:,} exceeds the limit of {MAX_SEQUENCE_LENGTH:,}")


def _check_length(length: int, what: str) -> None:
    if length > MAX_SEQUENCE_LENGTH:
        raise _limit_error(what, length)


def _footprint(value: Any, budget: int = MAX_SEQUENCE_LENGTH) -> int:
    """How many elements a C-level walk over `value` visits (nested containers and the
    characters of strings included), counted only up to just past `budget`. An item is
    counted once, by the container that holds it (and a text also by its characters)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _TEXT):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= budget:
                stack.extend(v for v in item.values() if isinstance(v, _NESTED))
        elif isinstance(item, _CONTAINERS):
            total += len(item)
            if total <= budget:
                stack.extend(v for v in item if isinstance(v, _NESTED))
        if total > budget:
            return total
    return total


def _check_footprint(value: Any, what: str) -> None:
    if isinstance(value, _CONTAINERS + _TEXT):
        size = _footprint(value)
        if size > MAX_SEQUENCE_LENGTH:
            raise _limit_error(f"{what} over more than that many elements", size)


def _guarded_pow(base: Any, exp: Any, mod: Any = None) -> Any:
    if mod is not None:  # modular powers stay below the modulus: cheap at any exponent
        return pow(base, exp, mod)
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        bits = exp * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise _LimitError(
                f"{base} ** {exp} would have about {int(bits)} bits; limit is {MAX_INT_BITS}"
            )
    return base**exp


def _size(value: Any) -> int | None:
    if isinstance(value, str | bytes | list | tuple | bytearray):
        return len(value)
    return None


def _guarded_mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length()
        if bits > MAX_PRODUCT_BITS:
            raise _LimitError(f"a product of about {bits:,} bits; limit is {MAX_PRODUCT_BITS:,}")
        return left * right
    for seq, count in ((left, right), (right, left)):
        if _size(seq) is not None and isinstance(count, int) and count > 0:
            each = _footprint(seq, MAX_SEQUENCE_LENGTH // count + 1)
            if each * count > MAX_SEQUENCE_LENGTH:
                raise _LimitError(
                    f"repeating a sequence of {each:,} elements {count:,} times exceeds "
                    f"{MAX_SEQUENCE_LENGTH:,}"
                )
    return left * right


def _guarded_add(left: Any, right: Any) -> Any:
    left_size, right_size = _size(left), _size(right)
    if left_size is not None and right_size is not None:
        _check_length(left_size + right_size, "joining two sequences")
    return left + right


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _guarded_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        for width, precision in _PERCENT_SPEC.findall(left):
            if "*" in (width, precision):
                raise _LimitError("%-formatting with a width taken from the data ('*')")
            for digits in (width, precision):
                if digits:
                    _check_length(int(digits), "a %-format width")
    elif isinstance(left, bytes):
        raise _LimitError("%-formatting of bytes is not available")
    return left % right


def _guarded_lshift(left: Any, right: Any) -> Any:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right + left.bit_length() > MAX_INT_BITS
    ):
        raise _LimitError(f"{left} << {right} exceeds {MAX_INT_BITS} bits")
    return left << right


def _text_guard(value: str | bytes, name: str, method: Callable[..., Any]) -> Any:
    """str/bytes methods that can build a result far larger than their input."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name in ("ljust", "rjust", "center", "zfill"):
            width = args[0] if args else kwargs.get("width")
            if isinstance(width, int):
                _check_length(width, f"{name}()")
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                tabs = value.count("\t") if isinstance(value, str) else value.count(b"\t")
                _check_length(len(value) + tabs * max(size, 0), "expandtabs()")
        elif name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = (len(value) + 1) if len(old) == 0 else value.count(old)
            if len(args) >= 3 and isinstance(args[2], int) and args[2] >= 0:
                count = min(count, args[2])
            _check_length(len(value) + count * max(len(new) - len(old), 0), "replace()")
        elif name == "translate" and args and isinstance(args[0], dict):
            longest = max(
                (len(v) for v in args[0].values() if isinstance(v, str | bytes)), default=1
            )
            _check_length(len(value) * max(longest, 1), "translate()")
        elif name == "join" and args:
            parts = list(args[0])
            total = sum(len(p) for p in parts if isinstance(p, str | bytes))
            _check_length(total + len(value) * max(len(parts) - 1, 0), "join()")
            return method(parts)
        return method(*args, **kwargs)

    return guarded


_TEXT_METHODS = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join", "translate"}
)


def _guarded_getattr(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, _GuardedType):
        obj = obj.base
    if name in ("format", "format_map") and (obj is str or isinstance(obj, str)):
        raise NotImplementedError("Using the format*() methods of `str` is not safe.")
    value = safer_getattr(obj, name, default)  # type: ignore[no-untyped-call]
    if name in _TEXT_METHODS:
        if isinstance(obj, _TEXT):
            return _text_guard(obj, name, value)
        if obj in _TEXT:  # the unbound method: str.ljust(text, width)

            def unbound(text: Any, *args: Any, **kwargs: Any) -> Any:
                if not isinstance(text, obj):
                    raise TypeError(f"{obj.__name__}.{name}() needs a {obj.__name__}")
                return _text_guard(text, name, getattr(text, name))(*args, **kwargs)

            return unbound
    if name == "extend" and isinstance(obj, list):

        def extend(items: Iterable[Any]) -> None:
            items = list(items)
            _check_length(len(obj) + len(items), "extend()")
            obj.extend(items)

        return extend
    if name == "to_bytes" and isinstance(obj, int):

        def to_bytes(length: int = 1, *args: Any, **kwargs: Any) -> bytes:
            _check_length(length, "to_bytes()")
            return obj.to_bytes(length, *args, **kwargs)

        return to_bytes
    return value


def _guarded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise _LimitError(f"range of {len(result):,} items exceeds {MAX_RANGE:,}")
    return result


class _GuardedType(type):
    """A builtin type whose constructor is guarded, but which still answers isinstance()
    and issubclass() as the type itself (`isinstance(amount, int)` keeps working)."""

    base: type
    check: Callable[..., None]

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.base)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.base)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        cls.check(*args, **kwargs)
        return cls.base(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.base, name)

    def __repr__(cls) -> str:
        return repr(cls.base)


def _guarded_type(base: type, check: Callable[..., None]) -> type:
    return _GuardedType(base.__name__, (), {"base": base, "check": staticmethod(check)})


def _first_footprint(name: str) -> Callable[..., None]:
    def check(*args: Any, **kwargs: Any) -> None:
        for arg in args[:1]:
            _check_footprint(arg, f"{name}()")

    return check


def _int_check(*args: Any, **kwargs: Any) -> None:
    if args:
        _decimal_bound(args[0], "int()")


def _map(function: Callable[..., Any], *iterables: Iterable[Any]) -> Iterable[Any]:
    """map() that runs in a Python frame, where the time limit can see every item."""
    for items in zip(*iterables, strict=False):
        yield function(*items)


def _filter(function: Callable[[Any], Any] | None, iterable: Iterable[Any]) -> Iterable[Any]:
    """filter() that runs in a Python frame, where the time limit can see every item."""
    for item in iterable:
        if function(item) if function is not None else item:
            yield item


def _walking(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A builtin that walks its first argument in C: refuse huge nested containers.
    (Generators are walked through Python frames, where the time limit holds.)"""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        for arg in args[:1]:
            _check_footprint(arg, f"{getattr(fn, '__name__', 'this')}()")
        return fn(*args, **kwargs)

    guarded.__name__ = getattr(fn, "__name__", "guarded")
    return guarded


def _guarded_sum(items: Any, start: Any = 0) -> Any:
    if not isinstance(start, int | float | Decimal):
        raise _LimitError("sum() adds numbers; join sequences with a comprehension")
    _check_footprint(items, "sum()")
    return sum(items, start)


def _decimal_bound(value: Any, what: str) -> None:
    if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) > MAX_INT_BITS:
        raise _LimitError(f"{what} of a decimal with exponent {value.adjusted():,}")


def _guarded_round(value: Any, *args: Any) -> Any:
    _decimal_bound(value, "round()")
    return round(value, *args)


def _tick() -> None:
    """Called at the top of every loop body, so that the time limit sees each pass."""


_BINOP_GUARDS = {
    ast.Pow: "_guarded_pow_",
    ast.Mult: "_guarded_mul_",
    ast.LShift: "_guarded_lshift_",
    ast.Add: "_guarded_add_",
    ast.Mod: "_guarded_mod_",
}


class _OutOfTime(BaseException):
    """Raised by the trace function; a BaseException so that nothing in reach of a
    diagram (which may not write `try` anyway) swallows it."""


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus guards on operators that allocate without bound,
    a time-limit check in every loop, and no imports, classes or exception handling."""

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
        if not isinstance(node.target, ast.Name):
            self.error(
                node,
                "augmented assignment of items and attributes is not allowed; "
                "write d[k] = d[k] + 1 instead of d[k] += 1",
            )
            return node
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None:
            return node
        value = ast.Call(
            func=ast.Name(id=guard, ctx=ast.Load()),
            args=[ast.Name(id=node.target.id, ctx=ast.Load()), node.value],
            keywords=[],
        )
        assign = ast.Assign(targets=[node.target], value=value)
        return ast.fix_missing_locations(ast.copy_location(assign, node))

    def _ticking(self, node: ast.While | ast.For) -> ast.AST:
        node = self.node_contents_visit(node)
        tick = ast.Expr(ast.Call(func=ast.Name(id="_tick_", ctx=ast.Load()), args=[], keywords=[]))
        node.body.insert(0, ast.fix_missing_locations(ast.copy_location(tick, node)))
        return node

    def visit_While(self, node: ast.While) -> ast.AST:  # noqa: N802
        return self._ticking(node)

    def visit_For(self, node: ast.For) -> ast.AST:  # noqa: N802
        return self._ticking(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:  # noqa: N802
        if node.id in UNAVAILABLE_NAMES:
            self.error(node, f"'{node.id}' is not available in diagram expressions")
            return node
        return cast(ast.AST, super().visit_Name(node))

    def visit_Import(self, node: ast.Import) -> ast.AST:  # noqa: N802
        self.error(node, "import is not allowed in diagram expressions")
        return node

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST:  # noqa: N802
        self.error(node, "import is not allowed in diagram expressions")
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:  # noqa: N802
        self.error(node, "class definitions are not allowed in diagram scripts")
        return node

    def visit_Try(self, node: ast.Try) -> ast.AST:  # noqa: N802
        self.error(
            node,
            "try/except is not allowed in diagram scripts: a failing script fails its task, "
            "where it can be seen and retried",
        )
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:  # noqa: N802
        node = self.node_contents_visit(node)
        spec = node.format_spec
        if isinstance(spec, ast.JoinedStr):
            for part in spec.values:
                if isinstance(part, ast.FormattedValue):
                    self.error(node, "format specifications must be constant")
                elif isinstance(part, ast.Constant) and isinstance(part.value, str):
                    widths = [int(n) for n in re.findall(r"\d+", part.value)]
                    if any(width > MAX_SEQUENCE_LENGTH for width in widths):
                        self.error(node, f"a format width over {MAX_SEQUENCE_LENGTH:,}")
        return node


def _build_builtins() -> dict[str, Any]:
    names = dict(safe_builtins)
    for unsafe in ("__build_class__", "id", "hash", "callable", "issubclass", "range"):
        names.pop(unsafe, None)
    for unsafe in UNAVAILABLE_NAMES:
        names.pop(unsafe, None)
    # Exceptions are not needed by expressions that may not catch them.
    exceptions = [
        n for n, v in names.items() if isinstance(v, type) and issubclass(v, BaseException)
    ]
    for name in exceptions:
        names.pop(name)
    names.update(
        {
            "range": _guarded_range,
            "list": _guarded_type(list, _first_footprint("list")),
            "tuple": _guarded_type(tuple, _first_footprint("tuple")),
            "set": _guarded_type(set, _first_footprint("set")),
            "frozenset": _guarded_type(frozenset, _first_footprint("frozenset")),
            "dict": _guarded_type(dict, _first_footprint("dict")),
            "str": _guarded_type(str, _first_footprint("str")),
            "int": _guarded_type(int, _int_check),
            "sorted": _walking(sorted),
            "repr": _walking(repr),
            "min": _walking(min),
            "max": _walking(max),
            "any": _walking(any),
            "all": _walking(all),
            "sum": _guarded_sum,
            "round": _guarded_round,
            "map": _map,
            "filter": _filter,
            "pow": _guarded_pow,
            # Lazy iterators: whatever consumes them is guarded or runs in Python frames.
            "reversed": reversed,
            "enumerate": enumerate,
            "zip": zip,
            "len": len,
            "abs": abs,
            "Decimal": Decimal,
        }
    )
    return names


_BUILTINS = _build_builtins()


def _base_globals() -> dict[str, Any]:
    return {
        "__builtins__": _BUILTINS,
        "_getattr_": _guarded_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_guarded_pow_": _guarded_pow,
        "_guarded_mul_": _guarded_mul,
        "_guarded_lshift_": _guarded_lshift,
        "_guarded_add_": _guarded_add,
        "_guarded_mod_": _guarded_mod,
        "_tick_": _tick,
    }


_GLOBALS_TEMPLATE = _base_globals()
_RESERVED = frozenset(_GLOBALS_TEMPLATE)


@lru_cache(maxsize=4096)
def _compile(source: str, mode: str) -> CodeType:
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            f"expression is {len(source):,} characters long; the limit is {MAX_SOURCE_LENGTH:,}",
            source[:200],
        )
    try:
        result = compiler(source, filename="<diagram>", policy=_Policy)
    except (RecursionError, MemoryError) as exc:
        raise ExpressionError(
            "expression is nested too deeply to compile",
            source[:200],
            hint="Split it into smaller steps.",
        ) from exc
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
    """Compile `source` without running it; raise ExpressionError if it is refused.

    Parts made of constants and operators alone (`9 ** 9 ** 9`, `'a' * 10 ** 9`) are
    worked out here, under the same guards and limits as at run time: one a guard
    refuses would be refused every time it runs, so it is refused now."""
    try:
        _compile(source, mode)
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", source) from exc
    _check_constants(source, mode)


_CONSTANT_NODES: tuple[type[ast.AST], ...] = (
    ast.Constant,
    ast.BinOp,
    ast.UnaryOp,
    ast.Tuple,
    ast.List,
    ast.operator,
    ast.unaryop,
    ast.expr_context,
)

#: Time and memory given to each constant part of an expression at deploy time, and
#: how many parts of one expression are worked out (the rest are left to run time).
CONSTANT_TIME_LIMIT = 0.2
CONSTANT_MEMORY_LIMIT = 64 * 1024 * 1024
MAX_CONSTANT_PARTS = 50


def _constant_parts(node: ast.AST) -> Iterator[ast.expr]:
    """The largest sub-expressions of `node` built of constants and operators only,
    with at least one operator in them."""
    if isinstance(node, ast.BinOp | ast.UnaryOp) and all(
        isinstance(n, _CONSTANT_NODES) for n in ast.walk(node)
    ):
        if any(isinstance(n, ast.BinOp) for n in ast.walk(node)):
            yield node
        return
    for child in ast.iter_child_nodes(node):
        yield from _constant_parts(child)


def _check_constants(source: str, mode: str) -> None:
    tree = ast.parse(source.strip() if mode == "eval" else source, mode=mode)
    parts = list(itertools.islice(_constant_parts(tree), MAX_CONSTANT_PARTS))
    if not parts:
        return
    constants = Evaluator(CONSTANT_TIME_LIMIT, CONSTANT_MEMORY_LIMIT)
    for part in parts:
        text = ast.unparse(part)
        try:
            constants.evaluate(text, {})
        except (_LimitError, EvaluationTimeoutError) as exc:
            reason = exc.message if isinstance(exc, ExpressionError) else str(exc)
            raise ExpressionError(
                f"expression refused: {text} fails every time: {reason}",
                source,
                hint="Diagram expressions must compute small values quickly.",
            ) from exc
        except ExpressionError as exc:  # the memory limit
            raise ExpressionError(
                f"expression refused: {text} fails every time: {exc.message}", source
            ) from exc
        except Exception:  # noqa: S112 - other failures (1 / 0, 'a' - 1) show when run
            continue


def _scope(names: Mapping[str, Any]) -> dict[str, Any]:
    """The data as globals; names starting with '_' (the guards' namespace) are left out,
    so no data can stand in for a guard or for the builtins."""
    scope = {k: v for k, v in names.items() if not k.startswith("_")}
    scope.update(_GLOBALS_TEMPLATE)
    return scope


class _OutOfMemory(BaseException):
    """Raised by the trace function when an evaluation's memory passes its limit."""


class _Statm:
    """The resident size of this process, read from /proc/self/statm (Linux).

    The file stays open (one read is about a microsecond); it is opened again in a
    forked child, whose /proc/self is another file."""

    def __init__(self) -> None:
        self._pid = -1
        self._fd: int | None = None
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._lock = threading.Lock()

    def resident_bytes(self) -> int | None:
        """The resident size in bytes, or None where it cannot be read."""
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                try:
                    self._fd = os.open("/proc/self/statm", os.O_RDONLY)
                except OSError:
                    self._fd = None
            if self._fd is None:
                return None
            try:
                fields = os.pread(self._fd, 128, 0).split()
            except OSError:
                return None
        return int(fields[1]) * self._page


_STATM = _Statm()


class _Deadline:
    """A trace function that interrupts Python code running past a deadline, or
    growing the process's memory past a limit.

    Loops and comprehensions produce line events on every iteration, and every call of
    a guard is a call event, so anything that runs long or allocates much in Python
    frames is seen; single C calls are bounded by the guards.
    """

    def __init__(self, limit: float, memory_limit: int | None) -> None:
        now = time.monotonic()
        self.deadline = now + limit
        self.limit = limit
        self.memory_limit = memory_limit
        self.next_measure = now + MEMORY_CHECK_INTERVAL if memory_limit else math.inf
        self.baseline: int | None = None

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        now = time.monotonic()
        if now > self.deadline:
            raise _OutOfTime(f"evaluation exceeded {self.limit:g} s")
        if now >= self.next_measure:
            self._measure(now)
        return self

    def _measure(self, now: float) -> None:
        resident = _STATM.resident_bytes()
        if resident is None or self.memory_limit is None:
            self.next_measure = math.inf
            return
        self.next_measure = now + MEMORY_CHECK_INTERVAL
        if self.baseline is None:
            self.baseline = resident
        elif resident - self.baseline > self.memory_limit:
            raise _OutOfMemory(resident - self.baseline)


class Evaluator:
    """Evaluate diagram expressions and run diagram scripts in a restricted namespace."""

    def __init__(
        self,
        time_limit: float = DEFAULT_TIME_LIMIT,
        memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self._local = threading.local()

    def evaluate(self, source: str, names: Mapping[str, Any]) -> Any:
        """Return the value of the expression `source` with `names` in scope."""
        code = self._code(source.strip(), "eval")
        return self._run(code, _scope(names), source)

    def execute(self, source: str, names: dict[str, Any]) -> None:
        """Run the script `source`; variables it assigns or deletes update `names`.
        Names starting with '_' are neither visible to it nor changed by it."""
        code = self._code(source, "exec")
        scope = _scope(names)
        self._run(code, scope, source)
        for key in [k for k in names if k not in scope and not k.startswith("_")]:
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
            sys.settrace(_Deadline(self.time_limit, self.memory_limit))
        try:
            return eval(code, scope)  # noqa: S307 - restricted code, guarded globals
        except _OutOfTime:
            stopped: ExpressionError = EvaluationTimeoutError(
                f"expression stopped after {self.time_limit:g} s",
                source,
                hint="Simplify the expression; diagram expressions must be quick.",
            )
        except _OutOfMemory as exc:
            grown = exc.args[0] if exc.args else 0
            stopped = ExpressionError(
                f"expression stopped: it took {grown / 2**20:,.0f} MB of memory; "
                f"the limit is {(self.memory_limit or 0) / 2**20:,.0f} MB",
                source,
                hint="Diagram expressions must work on small data; "
                "move bulk work into a service task's handler.",
            )
        finally:
            if not nested:
                sys.settrace(previous)
                self._local.active = False
        # Raised here, outside the handler, so that it has no context: what reports it
        # (SpiffWorkflow wraps it) names this error, not the trace function's signal.
        raise stopped
