# category: import-bypass
# attack: call the import machinery directly: __import__('os'), __builtins__['__import__'], __loader__.load_module, __spec__.loader
# marker: PWNED-import_dunder_import
# expect: ERROR|DONE
# target: runtime
MARK = "PWNED" + "-import_dunder_import"

for label, load in (
    ("__import__", lambda: __import__("os")),
    ("__builtins__", lambda: __builtins__["__import__"]("os")),
    ("__loader__", lambda: __loader__.load_module("os")),
    ("__spec__", lambda: __spec__.loader.load_module("os")),
):
    try:
        module = load()
        print(MARK, label, "gave os, pid", module.getpid())
    except Exception as exc:
        print(label, "failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
