# category: introspection
# attack: the same function attributes by string names: getattr(f, '__glob' + 'als__'), 'func_globals', '__co' + 'de__', 'co_consts', 'cell_contents', on bot and stdlib functions and methods
# marker: PWNED-introspection_function_globals_dynamic
# expect: ERROR|DONE
# target: runtime
import functools
import random

MARK = "PWNED" + "-introspection_function_globals_dynamic"
u = chr(95) * 2


def agent(observation, configuration):
    return observation.step % configuration.signs


def closure():
    secret = 1

    def inner():
        return secret

    return inner


TARGETS = {"agent": agent, "closure": closure(), "seed": random.Random.seed, "bound": random.Random().seed,
           "partial": functools.partial(agent), "shuffle": random.shuffle}
NAMES = [u + "globals" + u, "func_globals", u + "code" + u, "func_code", u + "closure" + u, "func_closure",
         u + "builtins" + u, u + "func" + u, u + "wrapped" + u, "func", "cell_contents", "co_consts"]
for label, target in TARGETS.items():
    for name in NAMES:
        try:
            value = getattr(target, name)
        except Exception as exc:
            print(label, name, "failed:", repr(exc))
            continue
        if name == "func" and value in (agent, None):
            continue  # a partial's own function: the bot put it there
        print(MARK, label, name, repr(value)[:60])
