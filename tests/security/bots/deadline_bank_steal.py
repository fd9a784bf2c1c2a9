# category: deadline-abuse
# attack: answer just under actTimeout, then just over, watching whether the overage bank ever grows back
# marker: PWNED-deadline_bank_steal
# expect: DONE|TIMEOUT
# config: {"episodeSteps": 6}
import time

banks = []


def agent(observation, configuration):
    bank = observation.remainingOverageTime
    if banks and bank > min(banks) + 1e-6:
        print("PWN" + "ED-deadline_bank_steal", "the bank grew back:", banks, bank)
    banks.append(bank)
    act = configuration.actTimeout
    time.sleep(act * 0.9 if observation.step % 2 == 0 else act + 0.05)
    return observation.step % configuration.signs
