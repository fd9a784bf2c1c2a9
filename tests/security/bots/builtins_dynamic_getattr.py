# category: builtins-recovery
# attack: the same escapes with every attribute name given to getattr as a string: getattr(0, '__cl'+'ass__'), getattr(type, '__subcl'+'asses__')(object), getattr(print, '__se'+'lf__')
# marker: PWNED-builtins_dynamic_getattr
# expect: ERROR|DONE
# target: runtime
# No attribute in the syntax tree starts with "_": only the runtime's getattr can refuse.
MARK = "PWNED" + "-builtins_dynamic_getattr"


def attempt(label, fn):
    try:
        result = fn()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        return None
    if result is not None:  # a refusal hidden behind getattr's default gives None
        print(MARK, label, "gave", repr(result)[:80])
    return result


attempt("class of 0", lambda: getattr(0, "__cl" + "ass__"))
attempt("mro of int", lambda: getattr(int, "mr" + "o")())
attempt("type's subclasses", lambda: getattr(type, "__subcl" + "asses__")(object))
attempt("object's subclasses", lambda: getattr(getattr((), "__class__"), "__base__"))
attempt("print's module", lambda: getattr(print, "__se" + "lf__"))
attempt("len's module", lambda: getattr(len, "__self__"))
attempt("builtins dict", lambda: getattr(getattr(print, "__self__"), "__dict__"))
attempt("with a default", lambda: getattr(print, "__self__", None))
attempt("type of type", lambda: type(type)("X", (), {}))
attempt("three-argument type", lambda: type("X", (), {"y": 1}))


def agent(observation, configuration):
    return observation.step % configuration.signs
