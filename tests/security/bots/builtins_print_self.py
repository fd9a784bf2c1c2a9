# category: builtins-recovery
# attack: a builtin function's __self__ is the builtins module: print.__self__.open, len.__self__.__import__('os'), type.__subclasses__(object)
# marker: PWNED-builtins_print_self
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-builtins_print_self"

try:
    real = print.__self__
    print(MARK, "builtins module", real.open("/etc/hostname").read()[:20])
    print(MARK, "os", len.__self__.__import__("os").getpid())
except Exception as exc:
    print("__self__ failed:", repr(exc))
try:
    print(MARK, "subclasses through type", len(type.__subclasses__(object)))
except Exception as exc:
    print("type.__subclasses__ failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
