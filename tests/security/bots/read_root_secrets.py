# category: read-files
# attack: read /etc/shadow, root's SSH keys and history, host SSH keys, /proc/kcore and /dev/mem
# marker: PWNED-read_root_secrets
# expect: ERROR|DONE
MARK = "PWNED" + "-read_root_secrets"
PATHS = ["/etc/shadow", "/root/.ssh/id_rsa", "/root/.ssh/id_ed25519", "/root/.ssh/authorized_keys",
         "/root/.bash_history", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key", "/proc/kcore",
         "/dev/mem", "/etc/sudoers", "/var/log/auth.log"]

for path in PATHS:
    try:
        with open(path, "rb") as file:
            data = file.read(64)
    except Exception as exc:
        print(path, "failed:", repr(exc))
        continue
    if data:
        print(MARK, path, data[:40])


def agent(observation, configuration):
    return observation.step % configuration.signs
