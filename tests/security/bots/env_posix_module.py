# category: env-secrets
# attack: reach the process environment through modules other than os: posix, sys, ctypes' getenv
# marker: PWNED-env_posix_module
# expect: ERROR|DONE
MARK = "PWNED" + "-env_posix_module"
NAME = "ARENA_TEST_SECRET"

try:
    import posix

    if NAME.encode() in posix.environ:
        print(MARK, "posix", posix.environ[NAME.encode()])
except Exception as exc:
    print("posix failed:", repr(exc))
try:
    import ctypes

    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p
    value = libc.getenv(NAME.encode())
    if value:
        print(MARK, "getenv", value)
except Exception as exc:
    print("ctypes failed:", repr(exc))
try:
    import sys

    print("argv", sys.argv, "flags", sys.flags)
except Exception as exc:
    print("sys failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
