# -*- coding: unicode_escape -*-
# category: static-bypass
# attack: a unicode_escape coding cookie: the interpreter reads an escaped newline in a comment as a line break, so a comment hides code
# marker: PWNED-static_coding_cookie_escape
# expect: DONE
# The hidden line prints the marker unconditionally: the marker means code the validator
# never saw ran. The arena parses the submission as text, where a cookie means nothing.
# a harmless comment \u000aprint("PWN" "ED-static_coding_cookie_escape", "hidden code ran")


def agent(observation, configuration):
    return observation.step % configuration.signs
