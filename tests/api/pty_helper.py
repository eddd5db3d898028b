#!/usr/bin/env python3
"""Drives `sbx exec -it` through a real pseudo-terminal for tests/api/t_cli.sh.

usage: pty_helper.py OUTDIR SBX ARGS...   (runs: sh -c 'stty -g >OUTDIR/before; SBX ARGS...;
echo $? >OUTDIR/rc; stty -g >OUTDIR/after' on a 30x100 terminal). Then it types `stty size`,
resizes the terminal to 40x120 (the kernel sends sbx SIGWINCH), types `stty size` again and
`exit 3`. Prints what it saw as lines "size1 R C", "size2 R C"; every wait is bounded."""
import fcntl, os, pty, re, select, struct, sys, termios, time

out, argv = sys.argv[1], sys.argv[2:]
quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)
script = f"stty -g >{out}/before; {quoted}; echo $? >{out}/rc; stty -g >{out}/after"
pid, fd = pty.fork()
if pid == 0:
    os.execvp("sh", ["sh", "-c", script])

def setsize(rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

setsize(30, 100)
buf = b""

def wait_for(pattern, seconds=20):
    global buf
    end = time.time() + seconds
    while time.time() < end:
        m = re.search(pattern, buf)
        if m:
            buf = buf[m.end():]
            return m
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return None
            if not data:
                return None
            buf += data
    return None

def size(tag):
    os.write(fd, b"stty size; echo mark$((40+2))\r")
    m = wait_for(rb"(\d+) (\d+)\r?\nmark42")
    print(tag, m.group(1).decode(), m.group(2).decode() if m else "", flush=True) if m else print(tag, "none", flush=True)

time.sleep(0.5)
size("size1")
setsize(40, 120)
time.sleep(0.5)
size("size2")
os.write(fd, b"exit 3\r")
end = time.time() + 20
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            if not os.read(fd, 4096):
                break
        except OSError:
            break
    done, _ = os.waitpid(pid, os.WNOHANG)
    if done:
        break
else:
    os.kill(pid, 9)
try:
    os.waitpid(pid, 0)
except ChildProcessError:
    pass
