"""The parallux launcher: starts, redirects, reaps, measures and stops commands for one runner.

Parallux starts one launcher per runner -- a child process for a local runner, a process at the far end of one
SSH channel for an SSH runner -- and talks to it with one JSON object per line on its stdin/stdout.

Requests (one line each)::

    {"op": "hello", "watchdog": 60}                  -> {"ev": "hello", ...machine facts...}
                                                     (watchdog: stop everything after that many seconds
                                                     without a request, as on EOF; optional)
    {"op": "run", "id": 7, "argv": [...], "env": {...}, "work_dir": "...", "cwd": null,
     "command_text": "...", "wrapped": "...", "record": {...}, "quiet_start": false}
                                                     -> {"ev": "started", "id": 7, "pid": ..., "start": ...}
                                                        (not sent when quiet_start is true)
                                                        {"ev": "exit", "id": 7, "status": "ok", "returncode": ..., ...}
                                                     or {"ev": "error", "id": 7, "message": "..."}
    {"op": "kill", "id": 7, "grace": 2.0, "reason": "timeout"}
                                                     stop the command's process tree (TERM, grace, KILL);
                                                     its record says why (status "timeout"/"cancelled")
    {"op": "ping"}                                   -> {"ev": "pong"}
    {"op": "records", "id": 9, "paths": [...]}       -> {"ev": "records", "id": 9, "records": [...]}
                                                     each path's completion record (a result.json) as an
                                                     object, or null: missing, unreadable or not a record
                                                     (--resume asks for many at once, not file by file)
    {"op": "quit", "grace": 2.0}                     stop everything (TERM, grace, KILL), then exit

When stdin closes -- parallux exited, crashed, was killed, or the SSH connection dropped -- the launcher stops
every process group it started (TERM, a short grace, KILL) and exits, so no command outlives its parallux.

Every command runs in a session of its own; stopping it kills that whole process group, and then also any
process whose environment carries the command's mark (``PARALLUX_JOB_MARK``): a descendant that called
``setsid`` has left the group but still carries the mark.

This file is deliberately self-contained: standard library only, Python 3.6 syntax, because it is also sent
verbatim to remote hosts whose Python parallux does not control.
"""

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

PROTOCOL_VERSION = 1
MARK_VAR = "PARALLUX_JOB_MARK"
RECORD_NAME = "result.json"
OUTPUT_NAMES = ("command.txt", "stdout.txt", "stderr.txt", RECORD_NAME)
HISTORY_DIR = ".history"
RECORD_LIMIT = 1 << 20  # bytes: a record is a few hundred; anything bigger is not one
EXIT_GRACE = 2.0
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>


def now():
    return time.time()


class Job(object):
    """One started command: its process, files and the state of any kill in progress."""

    def __init__(self, job_id, pid, popen, request, start):
        self.id = job_id
        self.popen = popen          # None when started by fast_spawn
        self.pid = pid
        self.request = request
        self.start = start
        self.kill_deadline = None   # when TERM was sent: the time KILL follows
        self.kill_reason = None     # why it is being stopped: "timeout" or "cancelled"
        self.killed_hard = False
        self.status = None          # the exit wait4 reported, kept until the kill sequence ends
        self.rusage = None
        self.end = None


class Launcher(object):
    def __init__(self, infd, outfd):
        self.infd = infd
        self.outfd = outfd
        self.jobs = {}          # pid -> Job
        self.by_id = {}         # request id -> Job
        self.groups = set()     # pgids started and perhaps still alive (for the final sweep)
        self.lingering = set()  # groups of finished commands that still had live members
        self.runs_seen = set()  # "<run id>." of every mark: the final sweep finds leftovers by it
        self.inbuf = b""
        self.outbuf = []
        # With a watchdog, silence from parallux for that long means it is gone even though no EOF came
        # (a half-open SSH connection): stop everything then, as on EOF. parallux pings well within it.
        self.watchdog = None
        self.last_input = now()
        self.running = True
        self.exit_grace = EXIT_GRACE
        self.selector = selectors.DefaultSelector()

    # -- I/O -------------------------------------------------------------------------------------------

    def send(self, message):
        """Queue an event; flush() writes what queued up in one write (one SSH packet, not one per event)."""
        self.outbuf.append((json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8"))

    def flush(self):
        data, self.outbuf = b"".join(self.outbuf), []
        while data:
            try:
                written = os.write(self.outfd, data)
            except InterruptedError:
                continue
            except OSError:  # parallux is gone: nobody to tell, stop everything
                self.running = False
                return
            data = data[written:]

    def read_requests(self):
        try:
            chunk = os.read(self.infd, 1 << 16)
        except InterruptedError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.running = False
            return
        self.last_input = now()
        self.inbuf += chunk
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if line.strip():
                self.handle_line(line)

    def handle_line(self, line):
        try:
            request = json.loads(line.decode("utf-8"))
        except ValueError as exc:
            self.send({"ev": "error", "id": None, "message": "malformed request: %s" % exc})
            return
        try:
            self.handle(request)
        except (KeyError, TypeError, AttributeError) as exc:
            self.send({"ev": "error", "id": request.get("id") if isinstance(request, dict) else None,
                       "message": "malformed request: %s: %s" % (type(exc).__name__, exc)})

    def handle(self, request):
        op = request.get("op")
        if op == "run":
            self.run(request)
        elif op == "kill":
            self.kill(request.get("id"), float(request.get("grace", EXIT_GRACE)),
                      request.get("reason") or "cancelled")
        elif op == "ping":
            self.send({"ev": "pong", "t": now()})
        elif op == "records":
            self.send({"ev": "records", "id": request.get("id"),
                       "records": [read_record(path) for path in request["paths"]]})
        elif op == "hello":
            if request.get("watchdog"):
                self.watchdog = float(request["watchdog"])
            self.send(hello())
        elif op == "quit":
            self.exit_grace = float(request.get("grace", EXIT_GRACE))
            self.running = False
        else:
            self.send({"ev": "error", "id": request.get("id"), "message": "unknown op %r" % (op,)})

    # -- starting ----------------------------------------------------------------------------------------

    def run(self, request):
        job_id = request["id"]
        try:
            pid, popen, start = spawn(request)
        except Exception as exc:  # report any launch failure; the launcher itself must survive it
            event = {"ev": "error", "id": job_id, "message": describe_os_error(exc), "status": "error"}
            if os.path.isdir(request.get("work_dir") or ""):
                write_record(request, dict(event, returncode=None, start=now(), end=now()))
            self.send(event)
            return
        job = Job(job_id, pid, popen, request, start)
        self.jobs[job.pid] = job
        self.by_id[job_id] = job
        self.groups.add(job.pid)
        if request.get("mark"):
            self.runs_seen.add(request["mark"].rsplit(".", 2)[0] + ".")
        if not request.get("quiet_start"):  # parallux itself needs only the exit event (one message less)
            self.send({"ev": "started", "id": job_id, "pid": job.pid, "start": start})

    # -- stopping ----------------------------------------------------------------------------------------

    def kill(self, job_id, grace, reason="cancelled"):
        job = self.by_id.get(job_id)
        if job is None or job.killed_hard:
            return
        job.kill_reason = job.kill_reason or reason
        deadline = now() + grace
        if job.kill_deadline is None:
            signal_tree(job.pid, job.request.get("mark"), signal.SIGTERM)
        if job.kill_deadline is None or deadline < job.kill_deadline:  # a second, harder stop shortens it
            job.kill_deadline = deadline
        if grace <= 0:
            self.kill_hard(job)

    def kill_hard(self, job):
        job.killed_hard = True
        signal_tree(job.pid, job.request.get("mark"), signal.SIGKILL)

    def check_kill_deadlines(self):
        t = now()
        for job in list(self.by_id.values()):
            if job.kill_deadline is not None and not job.killed_hard and t >= job.kill_deadline:
                self.kill_hard(job)
            if job.status is not None and self.kill_finished(job):
                self.finish(job)

    def kill_finished(self, job):
        """A killed command counts as ended once nothing of its tree is left (or KILL was sent)."""
        if job.kill_deadline is None or job.killed_hard:
            return True
        return not tree_alive(job.pid, job.request.get("mark"))

    def next_timeout(self):
        deadlines = [j.kill_deadline for j in self.by_id.values()
                     if j.kill_deadline is not None and not j.killed_hard]
        if self.watchdog is not None:
            deadlines.append(self.last_input + self.watchdog)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now()) + 0.005

    # -- reaping -------------------------------------------------------------------------------------------

    def reap(self):
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            job = self.jobs.pop(pid, None)
            if job is None:  # an adopted orphan (we are a subreaper): perhaps the last of a lingering group
                self.prune_lingering()
                continue
            job.status, job.rusage, job.end = status, rusage, now()
            if job.popen is not None:
                job.popen.returncode = status  # Popen must never wait for a pid we reaped (pid reuse)
            if self.kill_finished(job):
                self.finish(job)

    def finish(self, job):
        del self.by_id[job.id]
        if group_alive(job.pid):
            self.lingering.add(job.pid)  # its background processes live on: watch for the group's end
        else:
            self.groups.discard(job.pid)
        event = exit_event(job)
        write_record(job.request, event)
        self.send(event)

    def prune_lingering(self):
        """Forget process groups that have ended, so that the final sweep never signals a reused pgid."""
        for pgid in [g for g in self.lingering if not group_alive(g)]:
            self.lingering.discard(pgid)
            self.groups.discard(pgid)

    def stop_serving(self):
        self.running = False

    def stop_everything(self):
        """Stop every process group this launcher started: TERM, a short grace, then KILL; then write the
        record of every command that was still running, so that no command ends without one."""
        for sig in (signal.SIGTERM, signal.SIGHUP):  # a second TERM must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        # Marks are "<run id>.<seq>.<attempt>": sweeping by run catches the setsid'd leftovers of
        # commands that already finished, too.
        runs = list(self.runs_seen) + [j.request["mark"] for j in self.by_id.values() if j.request.get("mark")]
        for job in self.by_id.values():  # their records must say they were stopped, not that they failed
            job.kill_reason = job.kill_reason or "cancelled"
            job.kill_deadline = job.kill_deadline or now()
        signalled = [pgid for pgid in self.groups if try_killpg(pgid, signal.SIGTERM)]
        swept = sweep_marks(runs, signal.SIGTERM, prefix=True)
        if signalled or swept or self.by_id:  # the usual end of a run finds nothing left: no grace, no KILL
            deadline = now() + self.exit_grace
            while now() < deadline and any(group_alive(g) for g in self.groups):
                time.sleep(0.02)
                self.reap()
            for pgid in self.groups:
                try_killpg(pgid, signal.SIGKILL)
            sweep_marks(runs, signal.SIGKILL, prefix=True)
        deadline = now() + 1.0
        while self.by_id and now() < deadline:
            self.reap()
            self.check_kill_deadlines()
            if self.by_id:
                time.sleep(0.01)
        for job in list(self.by_id.values()):  # not reaped in time: record what is known
            job.status, job.end = (job.status if job.status is not None else signal.SIGKILL), now()
            job.rusage = job.rusage or resource_usage_unknown()
            self.finish(job)

    # -- main loop -----------------------------------------------------------------------------------------

    def serve(self):
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.infd, selectors.EVENT_READ, "in")
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        try:
            while self.running:
                ready = [key.data for key, _ in self.selector.select(self.next_timeout())]
                if "wake" in ready:  # exits first: their events free slots that parallux is waiting for
                    drain(wake_r)
                    self.reap()
                    self.flush()
                if "in" in ready:
                    self.read_requests()
                self.reap()
                self.check_kill_deadlines()
                self.flush()
                if self.watchdog is not None and now() - self.last_input > self.watchdog:
                    self.running = False
        finally:
            self.stop_everything()
            self.flush()


# -- spawning ---------------------------------------------------------------------------------------------

def spawn(request):
    """Create the work dir and files, then start the command in a new session with its output redirected."""
    work_dir = request["work_dir"]
    if not make_dirs(work_dir):
        keep_history(work_dir)
    text = request.get("command_text", "") + "\n"
    if request.get("wrapped"):
        text += "# as run:\n" + request["wrapped"] + "\n"
    write_file(os.path.join(work_dir, "command.txt"), text.encode("utf-8", "surrogateescape"))
    env = command_env(request)
    argv = request["argv"]
    cwd = request.get("cwd") or work_dir
    out = create_file(os.path.join(work_dir, "stdout.txt"))
    try:
        err = create_file(os.path.join(work_dir, "stderr.txt"))
    except BaseException:
        os.close(out)
        raise
    try:
        executable = resolve(argv[0], env)
        start = now()
        if FAST_SPAWN[0] and executable.startswith("/"):
            try:
                return fast_spawn(argv, executable, env, cwd, out, err), None, start
            except TypeError:  # this Python's _posixsubprocess differs: use Popen from now on
                FAST_SPAWN[0] = False
        popen = subprocess.Popen(argv, executable=executable, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=err, cwd=cwd, env=env, close_fds=True, start_new_session=True)
    finally:
        os.close(out)
        os.close(err)
    return popen.pid, popen, start


def create_file(path):
    """Create (or truncate) a file for writing: its fd, plain system calls, no file object."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o666)


def write_file(path, data):
    """Create (or truncate) a file holding data."""
    fd = create_file(path)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


# subprocess.Popen spends about as long in Python (building its object, re-encoding the environment) as the
# fork and exec themselves. On the Pythons whose _posixsubprocess.fork_exec signature is known, call it the
# way Popen does, with what spawn() already prepared; anywhere else (a remote host's Python), use Popen.
FAST_SPAWN = [sys.version_info[:2] in ((3, 11), (3, 12))]
_DEVNULL = []


def fast_spawn(argv, executable, env, cwd, out_fd, err_fd):
    """fork+exec in a new session with stdin from /dev/null; raises OSError as Popen would."""
    import _posixsubprocess
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
    env_list = [k + b"=" + v for k, v in env.items()]
    errpipe_read, errpipe_write = os.pipe()
    try:
        try:
            pid = _posixsubprocess.fork_exec(
                argv, (os.fsencode(executable),), True, (errpipe_write,), cwd, env_list,
                _DEVNULL[0], -1, -1, out_fd, -1, err_fd, errpipe_read, errpipe_write,
                True, True, -1, None, None, None, -1, None, subprocess._USE_VFORK)
        finally:
            os.close(errpipe_write)
        failure = b""
        while True:
            part = os.read(errpipe_read, 50000)
            failure += part
            if not part or len(failure) > 50000:
                break
    finally:
        os.close(errpipe_read)
    if failure:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise child_error(failure, executable, cwd)
    return pid


def child_error(data, executable, cwd):
    """The OSError the child reported through the error pipe ("ExceptionName:hex errno:message")."""
    try:
        name, hex_errno, message = data.split(b":", 2)
        number = int(hex_errno, 16)
        text = message.decode("utf-8", "replace")
    except ValueError:
        return OSError("bad exception data from the child: %r" % (data,))
    if text == "noexec":  # the error came from chdir(cwd)
        return OSError(number, os.strerror(number), cwd)
    return OSError(number, os.strerror(number), executable)


_BASE_ENV = None
_RESOLVED = {}


def command_env(request):
    """The launcher's environment plus the request's, as bytes: encoded once, not on every spawn."""
    global _BASE_ENV
    if _BASE_ENV is None:
        _BASE_ENV = dict(os.environb)
    env = _BASE_ENV.copy()
    for key, value in (request.get("env") or {}).items():
        env[os.fsencode(key)] = os.fsencode(value)
    env[b"SHLVL"] = b"1"  # a bash child would otherwise source .bashrc again under SSH
    if request.get("mark"):
        env[MARK_VAR.encode()] = os.fsencode(request["mark"])
    return env


def resolve(program, env):
    """The program's path by the command's own PATH, looked up once per (program, PATH)."""
    path = env.get(b"PATH")
    if "/" in program or path is None or not all(p.startswith(b"/") for p in path.split(b":")):
        return program  # relative PATH entries depend on the command's cwd: leave those to Popen
    key = (program, path)
    if key not in _RESOLVED:
        found = shutil.which(program, path=os.fsdecode(path))
        if found is None:
            return program  # let Popen report it as it would
        _RESOLVED[key] = found
    return _RESOLVED[key]


def make_dirs(path):
    """Create the directory; True when it is new (so nothing in it can need keeping)."""
    try:
        try:
            os.mkdir(path)  # the usual case: the workspace exists, the command's dir does not
        except FileNotFoundError:
            os.makedirs(path)
        return True
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return False


def keep_history(work_dir):
    """Move an earlier run's files aside so that nothing a command wrote is ever overwritten."""
    present = [n for n in OUTPUT_NAMES if os.path.exists(os.path.join(work_dir, n))]
    if not present:
        return
    history = os.path.join(work_dir, HISTORY_DIR)
    make_dirs(history)
    index = 1
    while os.path.exists(os.path.join(history, str(index))):
        index += 1
    target = os.path.join(history, str(index))
    os.mkdir(target)
    for name in present:
        shutil.move(os.path.join(work_dir, name), os.path.join(target, name))


def describe_os_error(exc):
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return "%s%s" % (exc.strerror, ": %s" % where if where != "" else "")
    return "%s: %s" % (type(exc).__name__, exc)


# -- results ----------------------------------------------------------------------------------------------

def exit_event(job):
    status = job.status
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    returncode = -signum if signum is not None else os.WEXITSTATUS(status)
    if signum is None and job.kill_deadline is not None and 128 < returncode < 128 + 65:
        signum = returncode - 128  # sh reports its child's signal death as 128+N: we sent that signal
    ru = job.rusage
    return {
        "ev": "exit", "id": job.id, "pid": job.pid, "returncode": returncode, "signal": signum,
        "killed": job.kill_deadline is not None, "start": job.start, "end": job.end,
        "status": job.kill_reason if job.kill_reason else ("ok" if returncode == 0 else "failed"),
        "wall_seconds": round(job.end - job.start, 6),
        "user_seconds": round(ru.ru_utime, 6), "system_seconds": round(ru.ru_stime, 6),
        "max_rss_kb": ru.ru_maxrss,
    }


def write_record(request, event):
    """The completion record beside the outputs: what ran, how it ended, what it cost."""
    record = dict(request.get("record") or {})
    record.update({k: v for k, v in event.items() if k not in ("ev", "id")})
    record["command"] = request.get("command_text")
    record["wrapped"] = request.get("wrapped")
    path = os.path.join(request["work_dir"], RECORD_NAME)
    try:
        # the C encoder (indent= is pure Python); written aside and renamed, so a record is never partial
        write_file(path + ".tmp", (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
        os.rename(path + ".tmp", path)
    except OSError as exc:
        event["record_error"] = describe_os_error(exc)


# -- process trees ----------------------------------------------------------------------------------------

class resource_usage_unknown(object):
    ru_utime = ru_stime = 0.0
    ru_maxrss = 0


def read_record(path):
    """A completion record as write_record left it, or None: missing, unreadable, too big, or not a JSON
    object (a record is renamed into place whole, so a partial one is not expected, but is not trusted)."""
    try:
        with open(path, "rb") as f:
            data = f.read(RECORD_LIMIT + 1)
        record = json.loads(data.decode("utf-8")) if len(data) <= RECORD_LIMIT else None
    except Exception:  # unreadable, not UTF-8, not JSON, or nested too deep (RecursionError): not a record
        return None
    return record if isinstance(record, dict) else None


def try_killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid):
    return try_killpg(pgid, 0)


def signal_tree(pgid, mark, sig):
    try_killpg(pgid, sig)
    if mark:
        sweep_marks([mark], sig)


def tree_alive(pgid, mark):
    return group_alive(pgid) or bool(mark and marked_pids([mark]))


def marked_pids(marks, prefix=False):
    """Pids of processes (ours: same uid) whose environment carries one of these marks (or mark prefixes)."""
    wanted = set((MARK_VAR + "=" + m).encode() for m in marks if m)
    if not wanted:
        return []
    found = []
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                items = f.read().split(b"\0")
        except OSError:
            continue
        if prefix:
            hit = any(item.startswith(w) for item in items for w in wanted)
        else:
            hit = bool(wanted.intersection(items))
        if hit:
            found.append(int(entry))
    return found


def sweep_marks(marks, sig, prefix=False):
    """Signal every process carrying one of the marks; how many there were."""
    pids = marked_pids(marks, prefix)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return len(pids)


def drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


# -- facts about this machine -----------------------------------------------------------------------------

def hello():
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    return {
        "ev": "hello", "protocol": PROTOCOL_VERSION, "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3], "logical_cores": os.cpu_count(),
        "usable_cores": cpus, "home": os.path.expanduser("~"), "cwd": os.getcwd(),
        "numactl": find_program("numactl"), "hostname": os.uname()[1],
    }


def find_program(name):
    return shutil.which(name)


def become_subreaper():
    """Adopt orphaned descendants (Linux), so that we reap them and hear when the last of a killed tree dies.

    Otherwise they go to init: no SIGCHLD tells us a killed tree is gone (its exit event would wait out the whole
    grace), and an init that reaps late or never (as in some containers) leaves zombies that keep the group
    "alive" meanwhile.
    """
    try:
        import ctypes  # here, not at the top: a Python built without ctypes must still run the launcher
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:  # not Linux, or no ctypes: orphans go to init, and kills end at the grace as before
        pass


def main():
    # The terminal's Ctrl-C is parallux's to handle. A do-nothing handler rather than SIG_IGN: exec resets a
    # handled signal to its default but keeps an ignored one ignored, and commands must keep Ctrl-C's default.
    signal.signal(signal.SIGINT, lambda *_: None)
    launcher = Launcher(sys.stdin.fileno(), sys.stdout.fileno())
    for sig in (signal.SIGTERM, signal.SIGHUP):  # end the loop; serve() then stops everything
        signal.signal(sig, lambda *_: launcher.stop_serving())
    become_subreaper()
    launcher.serve()
    return 0


if __name__ == "__main__":
    main()
    sys.stderr.flush()  # block-buffered on a Python older than 3.9
    # Everything is written (records, events) and nothing of ours needs finalizing: end at once, so that
    # parallux, waiting for this exit, is not kept waiting for an interpreter teardown.
    os._exit(0)
