# category: builtins-recovery
# attack: store on the standard library's objects, which the stdlib and the trusted runtime share and trust: through a typing alias into collections.Counter, a cached_property's attrname, update_wrapper and wraps onto a stdlib function, total_ordering, typing.final/no_type_check/runtime_checkable/dataclass_transform on stdlib objects, a Random's state, decimal's traps
# marker: PWNED-builtins_stdlib_stores
# expect: ERROR|DONE
# target: runtime
# Each store that lands on an object the bot did not make prints the marker.
import collections
import decimal
import functools
import json
import random
import typing

MARK = "PWNED" + "-builtins_stdlib_stores"


def alias_forwarding():
    typing.Counter.most_common = print
    return collections.Counter.most_common is print


def cached_property_attrname():
    peek = functools.cached_property(len)
    peek.attrname = chr(95) + "os"
    return peek.attrname == chr(95) + "os"


def update_wrapper_onto_stdlib():
    functools.update_wrapper(json.dumps, agent)
    return True


def wraps_onto_stdlib():
    functools.wraps(agent)(json.loads)
    return True


def total_ordering_on_stdlib():
    functools.total_ordering(collections.UserList)
    return True


def typing_decorators():
    typing.final(json.dumps)
    typing.no_type_check(collections.Counter)
    typing.runtime_checkable(typing.Protocol)
    typing.dataclass_transform()(collections.ChainMap)
    return True


def random_state():
    r = random.Random(1)
    r.gauss_next = 0.5
    return r.gauss_next == 0.5


def decimal_traps():
    decimal.getcontext().traps = {}
    return True


ROUTES = [alias_forwarding, cached_property_attrname, update_wrapper_onto_stdlib, wraps_onto_stdlib,
          total_ordering_on_stdlib, typing_decorators, random_state, decimal_traps]


def agent(observation, configuration):
    if observation.step == 0:
        for route in ROUTES:
            label = repr(route).split()[1]
            try:
                landed = route()
            except Exception as exc:
                print(label, "refused:", repr(exc)[:200])
                continue
            if landed:
                print(MARK, label, "stored on a stdlib object")
    return observation.step % configuration.signs
