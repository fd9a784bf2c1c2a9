# category: other-bots-code
# attack: look for the opponent's code, the server's secrets or paths in everything the arena hands the bot
# marker: PWNED-other_bots_in_observation
# expect: DONE
MARK = "PWNED" + "-other_bots_in_observation"
TELLTALES = ["ARENA-CANARY", "ARENA_TEST_SECRET", "def agent", "arena.db", "token", "/work/"]


def look(where, value):
    text = repr(value)
    for telltale in TELLTALES:
        if telltale in text:
            print(MARK, where, "holds", telltale)


def agent(observation, configuration):
    look("observation", observation)
    look("configuration", configuration)
    return observation.step % configuration.signs
