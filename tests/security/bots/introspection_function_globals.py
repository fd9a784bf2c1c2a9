# category: introspection
# attack: a function's __globals__, __code__.co_consts, __closure__ and __builtins__, on the bot's own functions and on the stdlib's (random.Random.seed.__globals__ holds os)
# marker: PWNED-introspection_function_globals
# expect: ERROR|DONE
# target: runtime
import random

MARK = "PWNED" + "-introspection_function_globals"


def agent(observation, configuration):
    return observation.step % configuration.signs


try:
    print(MARK, "agent globals' builtins:", agent.__globals__["__builtins__"])
    print(MARK, "seed's module globals, os pid", random.Random.seed.__globals__["_os"].getpid())
    print(MARK, "code constants", agent.__code__.co_consts, agent.__closure__)
    print(MARK, "builtins of a function", agent.__builtins__)
except Exception as exc:
    print("function attributes failed:", repr(exc))
