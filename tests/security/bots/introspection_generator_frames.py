# category: introspection
# attack: a generator's frame leads up the stack: gen.gi_frame.f_back.f_globals gives the runtime's globals (os, sys, the protocol channel)
# marker: PWNED-introspection_generator_frames
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-introspection_generator_frames"


def frames():
    yield 1


gen = frames()
next(gen)
try:
    frame = gen.gi_frame
    while frame is not None:
        names = frame.f_globals
        if "os" in names or "sys" in names:
            print(MARK, "runtime globals through a generator's frame:", sorted(names)[:8])
            print(MARK, "pid", names["os"].getpid())
            break
        frame = frame.f_back
    print(MARK, "a frame was reached:", gen.gi_frame, gen.gi_code.co_filename)
except Exception as exc:
    print("generator frames failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
