# category: builtins-recovery
# attack: what exceptions carry: AttributeError.obj from a failed lookup inside the stdlib (typing.Type.x hands over the real type), __traceback__ frames, __context__, except* groups
# marker: PWNED-builtins_exception_leftovers
# expect: ERROR|DONE
# target: runtime
# No "_" attribute is written out: exceptions are caught as values and read with getattr.
import typing

MARK = "PWNED" + "-builtins_exception_leftovers"
u = chr(95) * 2


def lookups():
    yield "typing.Type", lambda: typing.Type.anything
    yield "typing.Type[int]", lambda: typing.Type[int].anything
    yield "typing.List", lambda: typing.List.anything
    yield "print", lambda: print.anything


for label, lookup in lookups():
    try:
        lookup()
    except AttributeError as exc:
        if exc.obj is not None:
            print(MARK, label, "AttributeError.obj is", repr(exc.obj)[:60])
            try:
                made = exc.obj("Made", (), {"x": 1})
                print(MARK, "a class from a dict through obj:", made)
            except Exception as inner:
                print("calling obj failed:", repr(inner))
        for name in ("traceback", "context", "cause"):
            try:
                found = getattr(exc, u + name + u)
            except Exception as inner:
                print(label, name, "failed:", repr(inner))
                continue
            if found is not None:
                print(MARK, label, name, repr(found)[:60])
                try:
                    frame = getattr(found, "tb_frame")
                    print(MARK, "frame globals", sorted(getattr(frame, "f_globals"))[:5])
                except Exception as inner:
                    print("tb_frame failed:", repr(inner))
try:
    try:
        raise ExceptionGroup("group", [AttributeError("x", name="x", obj=print)])
    except* AttributeError as group:
        if group.exceptions[0].obj is not None:
            print(MARK, "except* kept obj", group.exceptions[0].obj)
except Exception as exc:
    print("group failed:", repr(exc))
try:
    typing.Type.anything
except AttributeError as exc:
    kept = exc
if kept.obj is not None:
    print(MARK, "obj outlived the handler:", kept.obj)


def agent(observation, configuration):
    return observation.step % configuration.signs
