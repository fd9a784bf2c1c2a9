# category: builtins-recovery
# attack: the classic escape: ().__class__.__base__.__subclasses__() to catch_warnings or os._wrap_close, then their globals' real builtins and os
# marker: PWNED-builtins_subclasses_walk
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-builtins_subclasses_walk"

try:
    classes = ().__class__.__base__.__subclasses__()
    print(MARK, "object's subclasses:", len(classes))
    for cls in classes:
        if cls.__name__ == "catch_warnings":
            real = cls()._module.__builtins__
            print(MARK, "builtins through catch_warnings", real["__import__"]("os").getpid())
        elif cls.__name__ == "_wrap_close":
            print(MARK, "os through _wrap_close", cls.__init__.__globals__["getpid"]())
except Exception as exc:
    print("walk failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
