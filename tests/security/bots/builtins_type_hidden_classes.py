# category: builtins-recovery
# attack: the classes of functions, generators, methods, builtins, descriptors and modules through type(): called directly, through functools.partial, map, itertools.groupby(key=type), sorted(key=type) and a defaultdict; the function class makes any code object a function
# marker: PWNED-builtins_type_hidden_classes
# expect: ERROR|DONE
# target: runtime
# In the arena, type is a guarded object: passed around as a value, it is still the guard that
# runs. Its marker means a real class of the interpreter's internals reached the bot.
import collections
import functools
import itertools
import random

MARK = "PWNED" + "-builtins_type_hidden_classes"
REAL = {
    "<class 'function'>", "<class 'generator'>", "<class 'method'>", "<class 'builtin_function_or_method'>",
    "<class 'method_descriptor'>", "<class 'wrapper_descriptor'>", "<class 'method-wrapper'>",
    "<class 'module'>", "<class 'code'>", "<class 'cell'>",
}


def agent(observation, configuration):
    return observation.step % configuration.signs


def gen():
    yield 1


class Thing:
    def method(self):
        return 1


def attempt(label, get):
    try:
        found = get()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        return
    for cls in found if isinstance(found, list) else [found]:
        if repr(cls) in REAL:
            print(MARK, label, "gave", repr(cls))


attempt("type(agent)", lambda: type(agent))
attempt("type(lambda)", lambda: type(lambda: 0))
attempt("type(generator)", lambda: type(gen()))
attempt("type(method)", lambda: type(Thing().method))
attempt("type(len)", lambda: type(len))
attempt("type(random.random)", lambda: type(random.random))
attempt("type(str.join)", lambda: type(str.join))
attempt("type(module)", lambda: type(random))
attempt("partial(type, agent)", lambda: functools.partial(type, agent)())
attempt("map(type)", lambda: list(map(type, [agent, gen(), len])))
attempt("groupby(key=type)", lambda: [key for key, _ in itertools.groupby([agent], key=type)])
attempt("sorted(key=type)", lambda: sorted([agent], key=type) and [])
attempt("defaultdict(type)", lambda: collections.defaultdict(type)["x"])
attempt("dict of type", lambda: {"t": type}["t"](agent))
