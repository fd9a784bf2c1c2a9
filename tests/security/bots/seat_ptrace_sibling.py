# category: other-seat
# attack: ptrace (attach, seize) and process_vm_readv every other process, through ctypes
# marker: PWNED-seat_ptrace_sibling
# expect: ERROR|DONE
MARK = "PWNED" + "-seat_ptrace_sibling"
PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_DETACH = 16, 0x4206, 17

try:
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        for request in (PTRACE_ATTACH, PTRACE_SEIZE):
            if libc.ptrace(request, pid, None, None) == 0:
                print(MARK, "traced", pid, flush=True)
                libc.ptrace(PTRACE_DETACH, pid, None, None)
            else:
                print("ptrace", pid, "failed: errno", ctypes.get_errno())
        buffer = ctypes.create_string_buffer(16)
        local = (ctypes.c_void_p * 2)(ctypes.addressof(buffer), 16)
        remote = (ctypes.c_void_p * 2)(0x400000, 16)
        if libc.process_vm_readv(pid, local, 1, remote, 1, 0) > 0:
            print(MARK, "read memory of", pid, buffer.raw)
except Exception as exc:
    print("no ctypes:", repr(exc))


def agent(observation, configuration):
    return observation.step % configuration.signs
