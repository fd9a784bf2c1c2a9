# -*- coding: utf-7 -*-
# category: static-bypass
# attack: a utf-7 coding cookie: the interpreter decodes a shifted newline in a comment, so a line every UTF-8 reader sees as a comment runs as code
# marker: PWNED-static_coding_cookie_utf7
# expect: DONE
# The hidden line prints the marker unconditionally: the marker means code the validator
# never saw ran. The arena parses the submission as text, where a cookie means nothing.
# a harmless comment +AAo-print("PWN" "ED-static_coding_cookie_utf7", "hidden code ran")


def agent(observation, configuration):
    return observation.step % configuration.signs
