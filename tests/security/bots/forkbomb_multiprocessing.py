# category: fork-bomb
# attack: a process pool of 64 workers through multiprocessing and concurrent.futures
# marker: PWNED-forkbomb_multiprocessing
# expect: ERROR|DONE
MARK = "PWNED" + "-forkbomb_multiprocessing"


def square(x):
    return x * x


try:
    import multiprocessing

    with multiprocessing.Pool(64) as pool:
        print(MARK, "pool", sum(pool.map(square, range(64))))
except Exception as exc:
    print("multiprocessing failed:", repr(exc))
try:
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(64) as executor:
        print(MARK, "executor", sum(executor.map(square, range(64))))
except Exception as exc:
    print("concurrent.futures failed:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
