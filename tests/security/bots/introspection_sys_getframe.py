# category: introspection
# attack: ask for the caller's frame: sys._getframe(1), inspect.currentframe(), inspect.stack(), traceback.extract_stack(); any frame leads to the runtime's globals
# marker: PWNED-introspection_sys_getframe
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-introspection_sys_getframe"


def attempt(label, get):
    try:
        value = get()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        return
    if value:
        print(MARK, label, "reached:", repr(value)[:80])


def getframe():
    import sys

    return getattr(sys, "_get" + "frame")(1)


def currentframe():
    import inspect

    return inspect.currentframe()


def stack():
    from inspect import stack

    return [info.filename for info in stack()]


def extract_stack():
    import traceback

    return traceback.extract_stack()


def agent(observation, configuration):
    for label, get in (("sys._getframe", getframe), ("inspect.currentframe", currentframe),
                       ("inspect.stack", stack), ("traceback.extract_stack", extract_stack)):
        attempt(label, get)
    return observation.step % configuration.signs
