# category: spawn-processes
# attack: start threads (threading, _thread) that keep computing between moves, outside any deadline
# marker: PWNED-spawn_threads
# expect: ERROR|DONE
MARK = "PWNED" + "-spawn_threads"


def background():
    print(MARK, "a thread runs beside the runtime", flush=True)


try:
    import threading

    thread = threading.Thread(target=background, daemon=True)
    thread.start()
    thread.join(1)
except Exception as exc:
    print("threading failed:", repr(exc))
try:
    import _thread

    _thread.start_new_thread(background, ())
except Exception as exc:
    print("_thread failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
