# category: import-bypass
# attack: the modules an allowed module imported for itself, named as strings: getattr(random, '_os'), typing.sys, collections.sys, dataclasses.sys, re._compiler, from typing import sys
# marker: PWNED-import_private_members
# expect: ERROR|DONE
# target: runtime
import collections
import dataclasses
import random
import re
import typing

MARK = "PWNED" + "-import_private_members"


def found(label, module):
    if module is not None and (hasattr(module, "getpid") or hasattr(module, "modules")):
        print(MARK, label, "gave a real module:", repr(module)[:60])


for module, name in ((random, "_os"), (typing, "sys"), (collections, "sys"), (dataclasses, "sys"),
                     (typing, "collections"), (re, "_compiler"), (dataclasses, "builtins"), (typing, "types")):
    try:
        found(name, getattr(module, name))
    except Exception as exc:
        print("getattr", name, "failed:", repr(exc))
try:
    from typing import sys

    found("from typing import sys", sys)
except Exception as exc:
    print("from typing import sys failed:", repr(exc))
try:
    from dataclasses import sys as dsys

    found("from dataclasses import sys", dsys)
except Exception as exc:
    print("from dataclasses import sys failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
