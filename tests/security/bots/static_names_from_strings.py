# category: static-bypass
# attack: build dunder names at run time (chr(95), join, %-format, bytes, slicing, reversal) and use them with getattr/hasattr/setattr
# marker: PWNED-static_names_from_strings
# expect: ERROR|DONE
# target: runtime
# The marker means a dunder attribute was read or written: the first step back to the real
# builtins. No name below is written out, so only the runtime's guards can refuse them.
import random

MARK = "PWNED" + "-static_names_from_strings"
u = chr(95)
NAMES = {
    "chr": u + u + "class" + u + u,
    "join": "".join([u, u, "glo", "bals", u, u]),
    "percent": "%c%cbase%c%c" % (95, 95, 95, 95),
    "bytes": bytes([95, 95, 115, 101, 108, 102, 95, 95]).decode(),
    "reversed": "".join(reversed(u + u + "sessalcbus" + u + u)),
    "slice": "x_" + "_dict_" + "_x",
}
NAMES["slice"] = NAMES["slice"][1:-1]
TARGETS = {"tuple": (), "print": print, "random": random, "Random": random.Random}


def agent(observation, configuration):
    return observation.step % configuration.signs


TARGETS["agent"] = agent
for how, name in NAMES.items():
    for label, target in TARGETS.items():
        try:
            found = getattr(target, name)
        except Exception as exc:
            print("getattr", how, label, "failed:", repr(exc))
        else:
            print(MARK, "getattr", how, label, repr(found)[:80])
        try:
            if hasattr(target, name):
                print(MARK, "hasattr", how, label)
        except Exception as exc:
            print("hasattr", how, label, "failed:", repr(exc))
try:
    setattr(agent, NAMES["join"], {})
    print(MARK, "setattr of a dunder worked")
except Exception as exc:
    print("setattr failed:", repr(exc))
