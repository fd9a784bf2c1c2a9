# category: static-bypass
# attack: dunder names that no source text spells: escapes ('\x5f\x5f', '\N{LOW LINE}', b'\x5f'), code points (chr(0x5f), chr(94 + 1), bytes([95]), '%c' % 95, f'{95:c}', format(95, 'c'), '{:c}'.format(95)) and joins of literals ('_' + '_', ''.join, replace, center, slicing)
# marker: PWNED-static_escaped_names
# expect: ERROR|DONE
# target: runtime
# Each NAMES entry reads "__self__" or "__class__"; the validator must flag every one of them
# (tests/sandbox/test_validator.py checks each line), the runtime's getattr refuses them all.
MARK = "PWNED" + "-static_escaped_names"
NAMES = {
    "hex escape": "\x5f\x5fself\x5f\x5f",  # route
    "named escape": "\N{LOW LINE}\N{LOW LINE}self\N{LOW LINE}\N{LOW LINE}",  # route
    "bytes escape": b"\x5f\x5fself\x5f\x5f".decode(),  # route
    "chr hex": chr(0x5F) + chr(0x5F) + "self" + chr(0x5F) + chr(0x5F),  # route
    "chr sum": chr(94 + 1) * 2 + "class" + chr(96 - 1) * 2,  # route
    "bytes list": bytes([95, 95, 115, 101, 108, 102, 95, 95]).decode(),  # route
    "percent c": "%c%cself%c%c" % (95, 95, 95, 95),  # route
    "f-string c": f"{95:c}{95:c}self{95:c}{95:c}",  # route
    "format c": format(95, "c") * 2 + "class" + format(95, "c") * 2,  # route
    "str.format c": "{:c}{:c}self{:c}{:c}".format(95, 95, 95, 95),  # route
    "plus": "_" + "_self_" + "_",  # route
    "join": "".join(["_", "_", "self", "_", "_"]),  # route
    "f-string": f"{'_'}{'_'}self{'_'}{'_'}",  # route
    "replace": "xxselfxx".replace("x", "_"),  # route
    "center": "self".center(8, "_"),  # route
    "slice": "_a_self_b_"[::1].replace("a", "").replace("b", ""),  # route
    "step slice": "_x_xsxexlxfx_x_"[::2],  # route
}


def agent(observation, configuration):
    return observation.step % configuration.signs


for how, name in NAMES.items():
    for label, target in (("print", print), ("tuple", ())):
        try:
            found = getattr(target, name)
        except Exception as exc:
            print("getattr", how, label, "failed:", repr(exc))
        else:
            print(MARK, "getattr", how, label, repr(found)[:80])
