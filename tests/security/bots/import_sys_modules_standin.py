# category: import-bypass
# attack: reach sys.modules through the module stand-ins: `from json import decoder` falls back to sys.modules['json.decoder'] when the module object has a __name__; copy, rebuild and name a stand-in
# marker: PWNED-import_sys_modules_standin
# expect: ERROR|DONE
# target: runtime
# CPython's `from m import x` looks up sys.modules[m.__name__ + "." + x] when m has no x: a
# stand-in that kept a __name__ would hand out any real submodule loaded in the process.
import copy
import json

MARK = "PWNED" + "-import_sys_modules_standin"


def real(module):
    text = repr(module)
    return text.startswith("<module '") and "(arena)" not in text


try:
    from json import decoder

    if real(decoder):
        print(MARK, "from json import decoder:", decoder)
except Exception as exc:
    print("from json import decoder failed:", repr(exc))
try:
    from json import scanner

    if real(scanner):
        print(MARK, "from json import scanner:", scanner)
except Exception as exc:
    print("from json import scanner failed:", repr(exc))
try:
    from collections import abc

    print("collections.abc is", abc)
    from collections.abc import sys

    if real(sys):
        print(MARK, "from collections.abc import sys:", sys)
except Exception as exc:
    print("from collections.abc import sys failed:", repr(exc))
try:
    standin = type(json)
    print("the stand-in's class:", standin)
    fresh = copy.copy(json)
    setattr(fresh, "__na" + "me__", "json")
    print(MARK, "named a stand-in")
except Exception as exc:
    print("naming a stand-in failed:", repr(exc))
try:
    clone = copy.deepcopy(json)
    if real(clone) or hasattr(clone, "modules"):
        print(MARK, "deepcopy of a stand-in gave", clone)
except Exception as exc:
    print("deepcopy of a stand-in failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
