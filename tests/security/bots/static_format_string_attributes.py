# category: static-bypass
# attack: read attributes through str.format templates: '{0.__class__}', format_map, nested specs, str.format unbound, templates built at run time
# marker: PWNED-static_format_string_attributes
# expect: ERROR|DONE
# target: runtime
# A format field walks attributes and items by itself ('{0.__class__.__base__}'): no
# attribute appears in the syntax tree. The marker means a template reached one.
import functools

MARK = "PWNED" + "-static_format_string_attributes"
u = chr(95) * 2
dunder_template = "{0." + u + "class" + u + "}"


def agent(observation, configuration):
    return observation.step % configuration.signs


ATTEMPTS = [
    ("literal", lambda: "{0.__class__.__base__}".format(())),
    ("format_map", lambda: "{a.__class__}".format_map({"a": ()})),
    ("unbound", lambda: str.format("{0.__class__}", ())),
    ("item", lambda: "{0[x]}".format({"x": "item"})),
    ("nested spec", lambda: "{0:{1.__class__}}".format("x", ())),
    ("built at run time", lambda: dunder_template.format(agent)),
    ("getattr", lambda: getattr(dunder_template, "format")(agent)),
    ("map", lambda: list(map(str.format, [dunder_template], [agent]))[0]),
    ("partial", lambda: functools.partial(str.format, dunder_template)(agent)),
    ("globals", lambda: ("{0." + u + "globals" + u + "}").format(agent)),
    ("conversion", lambda: "{0.real!r:>{0.imag}}".format(3)),
]
for label, attempt in ATTEMPTS:
    try:
        text = attempt()
    except Exception as exc:
        print(label, "failed:", repr(exc))
        continue
    print(MARK, label, "read through a template:", text[:80])
