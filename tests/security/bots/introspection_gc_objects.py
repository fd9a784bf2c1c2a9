# category: introspection
# attack: gc.get_objects() and gc.get_referrers(agent) to find the runtime's live objects: its module globals, the protocol channel, the real builtins
# marker: PWNED-introspection_gc_objects
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-introspection_gc_objects"


def hunt():
    import gc

    for obj in gc.get_objects():
        if isinstance(obj, dict) and "Channel" in obj and "serve" in obj:
            print(MARK, "runtime globals:", sorted(obj)[:8])
            return
    for referrer in gc.get_referrers(agent):
        print(MARK, "a referrer of agent:", type(referrer), repr(referrer)[:60])
        return


def agent(observation, configuration):
    if observation.step == 1:
        try:
            hunt()
        except Exception as exc:
            print("gc failed:", repr(exc))
    return observation.step % configuration.signs


hunt_at_load = hunt
try:
    hunt_at_load()
except Exception as exc:
    print("gc at load failed:", repr(exc))
