# category: output-flood
# attack: print 200 lines of 1 MB in a move, then answer as if nothing happened
# marker: PWNED-flood_print_lines
# expect: ERROR
# (returned as the move: a move in the replay after the flood means nothing cut the seat off)


def agent(observation, configuration):
    line = "x" * (1 << 20)
    for _ in range(200):
        print(line)
    return "PWN" + "ED-flood_print_lines"
