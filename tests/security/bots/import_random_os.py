# category: import-bypass
# attack: from random import _os, random._os and random.Random.seed's module globals: random imports os for urandom
# marker: PWNED-import_random_os
# expect: ERROR|DONE
# target: runtime
import random

MARK = "PWNED" + "-import_random_os"

try:
    from random import _os

    print(MARK, "from random import _os, pid", _os.getpid())
except Exception as exc:
    print("from random import _os failed:", repr(exc))
try:
    print(MARK, "random._os, pid", random._os.getpid())
except Exception as exc:
    print("random._os failed:", repr(exc))
try:
    print(MARK, "through a method's globals, pid", random.Random.seed.__globals__["_os"].getpid())
except Exception as exc:
    print("seed.__globals__ failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
