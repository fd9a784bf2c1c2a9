# category: env-secrets
# attack: read the server's secret from os.environ, os.getenv and /proc/self/environ
# marker: PWNED-env_os_environ
# expect: ERROR|DONE
MARK = "PWNED" + "-env_os_environ"
NAME = "ARENA_TEST_SECRET"

try:
    import os

    print("environment:", sorted(os.environ))
    if NAME in os.environ or os.getenv(NAME):
        print(MARK, os.environ.get(NAME))
except Exception as exc:
    print("os.environ failed:", repr(exc))
try:
    with open("/proc/self/environ", "rb") as file:
        data = file.read()
    if NAME.encode() in data:
        print(MARK, data[:300])
except Exception as exc:
    print("/proc/self/environ failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
