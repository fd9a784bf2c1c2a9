# category: introspection
# attack: frames and code through names given as strings: getattr(gen, 'gi_frame'), 'gi_' + 'code', 'f_back', 'cr_frame', 'ag_frame', a generator's frame while it runs
# marker: PWNED-introspection_frames_dynamic
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-introspection_frames_dynamic"
PARTS = {"frame": ("gi", "frame"), "code": ("gi", "code"), "yieldfrom": ("gi", "yieldfrom")}


def reach(obj, name):
    try:
        value = getattr(obj, name)
    except Exception as exc:
        print(name, "failed:", repr(exc))
        return None
    if value is not None:
        print(MARK, name, "reached:", repr(value)[:60])
    return value


def inner():
    yield 1


def outer():
    yield from inner()


gen = outer()
next(gen)
for prefix, suffix in PARTS.values():
    frame = reach(gen, prefix + "_" + suffix)
    if frame is not None:
        back = reach(frame, "f_back")
        reach(back or frame, "f_globals")


def running():
    me = yield
    reach(me, "gi_frame")
    yield


gen = running()
next(gen)
try:
    gen.send(gen)
except StopIteration:
    pass
for name in ("cr_frame", "ag_frame", "tb_frame", "f_locals", "f_builtins"):
    reach(gen, name)


def agent(observation, configuration):
    return observation.step % configuration.signs
