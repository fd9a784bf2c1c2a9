# category: static-bypass
# attack: forbidden builtins and modules spelled in Unicode that NFKC-normalises to them (ｅｖａｌ, 𝐞𝐱𝐞𝐜, ｏｐｅｎ, import ｏｓ)
# marker: PWNED-static_unicode_builtins
# expect: ERROR|DONE
# target: runtime
# Python reads these identifiers as eval, exec, open, compile, globals and os; a filter that
# compares raw spellings lets them through.
MARK = "PWNED" + "-static_unicode_builtins"


def attempt(label, fn):
    try:
        result = fn()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        return None
    print(label, "gave", repr(result)[:60])
    return result


if attempt("eval", lambda: ｅｖａｌ("6 * 7")) == 42:
    print(MARK, "eval")
box = {}
attempt("exec", lambda: 𝐞𝐱𝐞𝐜("box['x'] = 42", {"box": box}))
if box.get("x") == 42:
    print(MARK, "exec")
if attempt("compile", lambda: ｃｏｍｐｉｌｅ("1", "x", "eval")) is not None:
    print(MARK, "compile")
if attempt("globals", lambda: ｇｌｏｂａｌｓ()) is not None:
    print(MARK, "globals")
text = attempt("open", lambda: ｏｐｅｎ("/etc/hostname").read())
if text is not None:
    print(MARK, "open", text[:40])
try:
    import ｏｓ

    print(MARK, "import os", ｏｓ.getpid())
except Exception as exc:
    print("import ｏｓ failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
