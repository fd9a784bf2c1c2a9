# category: tamper-results
# attack: answer objects that serialize unlike what they are: an int whose repr is another move, str and dict subclasses that lie
# marker: PWNED-tamper_weird_serialization
# expect: DONE|INVALID
# If the runtime wrote what these classes claim instead of what they are, the marker would be
# the recorded move.
FAKE = "PWN" + "ED-tamper_weird_serialization"


class Sneaky(int):
    def __repr__(self):
        return '"' + FAKE + '"'

    def __str__(self):
        return '"' + FAKE + '"'


class SneakyStr(str):
    def __str__(self):
        return FAKE

    def __repr__(self):
        return FAKE


class SneakyDict(dict):
    def __iter__(self):
        return iter([FAKE])

    def __getitem__(self, key):
        return FAKE


def agent(observation, configuration):
    answers = [Sneaky(observation.step % 3), Sneaky(1), Sneaky(2), SneakyStr("1"), SneakyDict(move=1)]
    return answers[min(observation.step, len(answers) - 1)]
