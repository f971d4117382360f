"""The parallux launcher: starts, redirects, reaps, measures and stops commands for one runner.

Parallux starts one launcher per runner -- a child process for a local runner, a process at the far end of one
SSH channel for an SSH runner -- and talks to it with one JSON object per line on its stdin/stdout.

Requests (one line each)::

    {"op": "hello", "watchdog": 60}                  -> {"ev": "hello", ...machine facts...}
      (with "sigterm": "error": SIGTERM from outside ends the running commands "error", see stop_serving;
       with "machine_root": the tree MachineFacts reads, in place of PARALLUX_MACHINE_ROOT or /;
       with "gpus": [0, 1]: the GPUs its commands may lease (else those nvidia-smi lists), and "path": the PATH
       nvidia-smi is looked for on (else the launcher's): the hello says "gpus": [{"index", "numa_node"}...];
       with "bench": "none" or "files": benchmarking only, see Launcher.run_without_process)
                                                     (watchdog: stop everything after that many seconds
                                                     without a request, as on EOF; optional)
    {"op": "run", "id": 7, "argv": [...], "env": {...}, "work_dir": "...", "cwd": null,
     "command_text": "...", "record": {...}, "quiet_start": false,
     "metrics": {"gflops": "GFLOP/s: ([0-9.]+)", "n": null}}  (optional: see "metrics" below)
                                                     -> {"ev": "started", "id": 7, "pid": ..., "start": ...}
                                                        (not sent when quiet_start is true)
                                                        {"ev": "exit", "id": 7, "status": "ok", "returncode": ..., ...}
                                                     or {"ev": "error", "id": 7, "message": "..."}
      (with "cpus": [...]: spawned on those CPUs -- a lease's -- whatever the launcher's own affinity)
    {"op": "template", "tpl": 1, "run": {...}}       what the run requests naming "tpl": 1 share; such a
                                                     request says only what is its own (see "run templates")
    {"op": "affinity", "cpus": [0]}                  run on these CPUs from now on (null: every CPU), and so
                                                     do the commands started without "cpus"
    {"op": "kill", "id": 7, "grace": 2.0, "reason": "timeout"}
                                                     stop the command's process tree (TERM, grace, KILL);
                                                     its record says why (status "timeout"/"cancelled")
    {"op": "ping"}                                   -> {"ev": "pong"}
    {"op": "records", "id": 9, "paths": [...]}       -> {"ev": "records", "id": 9, "records": [...]}
                                                     each path's completion record (a result.json) as an
                                                     object, or null: missing, unreadable or not a record
                                                     (--resume asks for many at once, not file by file)
    {"op": "environment", "id": 3, "cpus": [0, 1]}   -> {"ev": "environment", "id": 3, "environment": {...}}
                                                     the machine's environment (MachineFacts.environment);
                                                     its frequency fields over "cpus" (null: every online CPU)
    {"op": "load", "id": 4}                          -> {"ev": "load", "id": 4, "load": [l1, l5, l15]}
    {"op": "probe", "id": 5, "command": "gcc --version", "env": {...}, "timeout": 60}
                                                     -> {"ev": "probe", "id": 5, "returncode": 0, "output": "...",
                                                         "truncated": false, "error": null}
                                                     a goal.probe(): see "probes" below
    {"op": "quit", "grace": 2.0}                     stop everything (TERM, grace, KILL), then exit

An SSH runner's hello may also ask the launcher to outlive a dropped connection ("reconnect": seconds,
"token": a secret): then it says in its hello where a new connection can attach to it ("attach"), its
events that must not be lost carry "seq", the requests that must arrive carry "n", and acknowledgements
travel both ways ("ack", "got"); see "reattaching" below.

File transfers (walk, get, credit, put, data, finish, abort: put/get/read_file need nothing on the runner but
this launcher) are requests too; see "files" below. Their file data travels in frames: a line saying
"bytes": N, then N raw bytes.

When stdin closes -- parallux exited, crashed, was killed, or the SSH connection dropped -- the launcher stops
every process group it started (TERM, a short grace, KILL) and exits, so no command outlives its parallux; one
that may be reattached waits for its grace first (see "reattaching").

Every command runs in a session of its own; stopping it kills that whole process group, and then also any
process whose environment carries the command's mark (``PARALLUX_JOB_MARK``): a descendant that called
``setsid`` has left the group but still carries the mark.

This file is deliberately self-contained: standard library only, Python 3.6 syntax, because it is also sent
verbatim to remote hosts whose Python parallux does not control.
"""

import errno
import json
import os
import re
import select
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

PROTOCOL_VERSION = 1
MARK_VAR = "PARALLUX_JOB_MARK"
MACHINE_ROOT_VAR = "PARALLUX_MACHINE_ROOT"  # where MachineFacts reads the machine (a test's fake tree)
GPU_QUERY = ("--query-gpu=index,pci.bus_id", "--format=csv,noheader")  # nvidia-smi's, at the hello
GPU_QUERY_TIMEOUT = 10.0  # seconds: a hung driver must not keep a runner from starting
RECORD_NAME = "result.json"


def compact_encoder():
    """JSON without spaces. json.dumps with options makes an encoder per call (1 us of every event), and so
    does JSONEncoder.encode, a C one: this makes the C one once (no circular check: events hold none)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # (an interpreter without json's C accelerator)
        return json.JSONEncoder(separators=(",", ":")).encode
    iterate = make(None, json.JSONEncoder().default, json.encoder.encode_basestring_ascii, None, ":", ",", False,
                   False, True)
    return lambda value: "".join(iterate(value, 0))


encode_compact = compact_encoder()
encode_sorted = json.JSONEncoder(sort_keys=True).encode
METRICS_NAME = "metrics.txt"  # what $PARALLUX_METRICS names: a command's own figures (see "metrics" below)
OUTPUT_NAMES = ("command.txt", "stdout.txt", "stderr.txt", RECORD_NAME, METRICS_NAME)
HISTORY_DIR = ".history"
RECORD_LIMIT = 1 << 20  # bytes: a record is a few hundred; anything bigger is not one
READ_SIZE = 1 << 20     # bytes read from stdin at once while file data comes (frames of 512 KiB), ...
REQUEST_READ = 1 << 16  # ... else: a buffer of 1 MiB is mapped and unmapped again on every read (2 system calls)
REQUESTS_PER_WRITE = 8  # requests of one read handled between two writes of the events so far
PIPE_SIZE = 1 << 20     # what stdin and stdout pipes are grown to, where they are pipes (fewer wake-ups)
STDERR_TAIL = 4096      # bytes of stderr sent with the exit event of a command that did not end ok
EXIT_GRACE = 2.0
HOLD_KILLED = 0.3  # seconds the report of a command killed from outside waits for the launcher's own SIGTERM
EXIT_FLUSH = 5.0        # seconds the last events get to drain into a slow reader before the launcher exits
PR_SET_CHILD_SUBREAPER = 36  # from <linux/prctl.h>
PR_SET_PDEATHSIG = 1
ORPHAN_GRACE = 1.0      # seconds between TERM and KILL for what a killed launcher left behind
RELIABLE_OPS = ("run", "template", "kill", "records", "affinity")  # the requests parallux numbers ("n") and sends again


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
        self.stopped = None         # (cause, words): why the launcher stopped it unasked as it ended
        self.killed_hard = False
        self.status = None          # the exit wait4 reported, kept until the kill sequence ends
        self.rusage = None
        self.end = None
        self.cgroup = None          # its CommandCgroups, where the launcher has cgroups
        self.usage = {}             # what its cgroups counted of its whole tree (Cgroups.usage)
        self.held_until = None      # killed from outside: its report waits this long (see Launcher.reap)


class Launcher(object):
    def __init__(self, infd, outfd):
        self.infd = infd
        self.outfd = outfd
        self.jobs = {}          # pid -> Job
        self.by_id = {}         # request id -> Job
        self.groups = set()     # pgids started and perhaps still alive (for the final sweep)
        self.lingering = {}     # pgid -> cgroup (or None) of finished commands that still had live members
        self.runs_seen = set()  # "<run id>." of every mark: the final sweep finds leftovers by it
        self.frames = Frames()  # what arrives on stdin, split into requests (and their file data)
        self.outbuf = []
        self.files = Files(self.send)  # put, get, walk: see "files" below
        # With a watchdog, silence from parallux for that long means it is gone even though no EOF came
        # (a half-open SSH connection): stop everything then, as on EOF. parallux pings well within it.
        self.watchdog = None
        self.last_input = now()
        self.running = True
        self.terminated = False  # SIGTERM came from outside: see stop_serving()
        self.ending = None       # why the loop ended, if not by a quit request (see ENDINGS)
        self.guardian = None     # the process that started this one and waits for it (see guard)
        self.sigterm_is_error = False  # whether it should be so (parallux asks it in its hello, for Slurm)
        self.bench = None        # "none"/"files": a run request starts no process (see run_without_process)
        self.held = []           # reaped commands killed from outside, reported a moment later (see reap)
        self.exit_grace = EXIT_GRACE
        self.selector = selectors.DefaultSelector()
        self.watching_output = False
        self.cgroups, self.no_limit = Cgroups.create()  # None where this machine gives us none: see Cgroups
        self.locks = WorkDirLocks()
        self.facts = MachineFacts()
        self.templates = RunTemplates()  # what a run's commands share, sent once: see "run templates" below
        self.probes = Probes(self.report)  # (its answer, like the others below, survives a dropped connection)
        # Where core leases are made, parallux moves the launcher -- and so the commands without a lease, born
        # of it -- to the CPUs outside every core pool of the machine (an "affinity" request): home_cpus.
        self.all_cpus = own_affinity()
        self.home_cpus = None
        KEEP_WORKSPACES[0] = True
        # An SSH runner's launcher outlives a dropped connection for a grace, waiting to be reattached: see
        # "reattaching" below. None: a lost channel ends it, as it always did (a local runner, reconnect=0).
        self.attachment = None
        self.connected = True  # whether infd/outfd are a channel to parallux (not /dev/null while detached)
        self.got = 0           # the "n" of the last numbered request received

    # -- I/O -------------------------------------------------------------------------------------------

    def send(self, message, payload=None):
        """Queue an event; flush() writes what queued up in one write (one SSH packet, not one per event).
        With a payload (file data), the event says "bytes": N and the N raw bytes follow it: a frame. While
        detached there is no one to send it to: it is dropped (see report() for what must not be)."""
        if not self.connected:
            return
        if payload is not None:
            message["bytes"] = len(payload)
        self.outbuf.append((encode_compact(message) + "\n").encode("utf-8"))
        if payload:
            self.outbuf.append(payload)

    def report(self, message):
        """Queue an event parallux must see even if the connection drops under it (an exit, an error, the
        records): where the launcher can be reattached, it is numbered and kept until acknowledged."""
        if self.attachment is None:
            self.send(message)
            return
        journal = self.attachment.journal
        message["seq"], message["got"] = journal.seq + 1, self.got
        data = (encode_compact(message) + "\n").encode("utf-8")
        journal.add(data)
        if self.connected:
            self.outbuf.append(data)

    def flush(self):
        """Write what is queued, as far as the stream takes it now. The stream is non-blocking: a reader that
        stopped reading (a frozen host, a stopped sshd) must never block this loop, or its watchdog and
        the kill deadlines would stop with it. What is not written waits for the stream to drain."""
        if not self.outbuf:
            return
        # (a memoryview: what is left of a large frame is not copied again on every write)
        data = self.outbuf[0] if len(self.outbuf) == 1 else memoryview(b"".join(self.outbuf))
        try:
            written = os.write(self.outfd, data)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:  # parallux is gone (or its connection): nobody to tell, stop everything -- or wait
            self.outbuf = []
            self.lose_channel("output")
            return
        self.outbuf = [data[written:]] if written < len(data) else []

    def flush_before_exit(self, seconds):
        """The last events (the records of stopped commands) get a few seconds to drain, no more."""
        deadline = now() + seconds
        while self.outbuf and self.connected and now() < deadline:
            self.flush()
            if self.outbuf:
                try:
                    select.select([], [self.outfd], [], max(0.0, deadline - now()))
                except (OSError, ValueError):
                    return

    def read_requests(self):
        try:
            chunk = os.read(self.infd, READ_SIZE if self.files.writers or self.frames.missing else REQUEST_READ)
        except (BlockingIOError, InterruptedError):  # (stdin may share a non-blocking socket with stdout)
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.lose_channel("eof")
            return
        self.last_input = now()
        for count, (request, payload) in enumerate(self.frames.feed(chunk), 1):
            self.handle_message(request, payload)
            if count % REQUESTS_PER_WRITE == 0:  # (what ended so far is told now, not after the whole read:
                self.reap()                      # parallux refills those slots while this loop handles the
                self.flush()                     # rest)

    def handle_message(self, request, payload):
        if isinstance(request, ValueError):
            self.report({"ev": "error", "id": None, "message": "malformed request: %s" % request})
            return
        if self.attachment is not None and isinstance(request, dict) and not self.acknowledge(request):
            return
        try:
            self.handle(request, payload)
        except (KeyError, TypeError, AttributeError) as exc:
            self.report({"ev": "error", "id": request.get("id") if isinstance(request, dict) else None,
                         "message": "malformed request: %s: %s" % (type(exc).__name__, exc)})

    def acknowledge(self, request):
        """Take a request's acknowledgement of events ("ack") and its number ("n"); False for one that came
        already (parallux sends again, after an attach, only what was not "got": never, but cheap to be sure)."""
        ack = request.get("ack")
        if ack is not None:
            self.attachment.journal.ack(int(ack))
        number = request.get("n")
        if number is None:
            return True
        if number <= self.got:
            return False
        self.got = number
        return True

    def handle(self, request, payload=None):
        op = request.get("op")
        if op == "run":
            if "tpl" in request:
                try:
                    request = self.templates.expand(request)
                except KeyError as exc:
                    self.report({"ev": "error", "id": request.get("id"), "status": "error",
                                 "message": "a run request without its template: %s" % (exc,)})
                    return
            self.run(request)
        elif op == "template":
            self.templates.define(request)
        elif op == "kill":
            self.kill(request.get("id"), float(request.get("grace", EXIT_GRACE)),
                      request.get("reason") or "cancelled")
        elif op == "ping":
            self.send({"ev": "pong", "t": now(), "got": self.got} if self.attachment else {"ev": "pong", "t": now()})
        elif op == "records":
            self.report({"ev": "records", "id": request.get("id"),
                         "records": [read_work_record(path, request.get("workspace")) for path in request["paths"]]})
        elif op == "hello":
            if request.get("watchdog"):
                self.watchdog = float(request["watchdog"])
            self.sigterm_is_error = request.get("sigterm") == "error"  # (a Slurm step's launcher)
            self.bench = request.get("bench") if request.get("bench") in BENCH_MODES else None
            self.facts = MachineFacts(request.get("machine_root"))
            event = dict(hello(self.facts), cgroups=self.cgroup_facts())
            event.update(gpu_facts(self.facts, request.get("gpus"), request.get("path"), event["step_gpus"]))
            if request.get("reconnect") and request.get("token"):
                event.update(self.offer_attach(str(request["token"]), float(request["reconnect"])))
            self.send(event)
        elif op == "affinity":
            self.move_home(request.get("cpus"))
        elif op == "environment":
            self.report({"ev": "environment", "id": request.get("id"),
                         "environment": self.facts.environment(request.get("cpus"))})
        elif op == "load":
            self.report({"ev": "load", "id": request.get("id"), "load": self.facts.load()})
        elif op == "probe":
            self.probes.start(request)
        elif op == "quit":
            self.exit_grace = float(request.get("grace", EXIT_GRACE))
            self.running = False
        elif op in FILE_OPS:
            self.files.handle(request, payload)
        else:
            self.report({"ev": "error", "id": request.get("id"), "message": "unknown op %r" % (op,)})

    # -- starting ----------------------------------------------------------------------------------------

    def run(self, request):
        job_id = request["id"]
        if self.bench == "none":
            self.run_without_process(request, None)
            return
        try:
            dir_fd = prepare_work_dir(request, self.locks.take)
        except (WorkDirInUse, UnsafeWorkDir) as exc:  # another live run's, or a link: touch nothing there
            reason = "locked" if isinstance(exc, WorkDirInUse) else "unsafe"
            self.report({"ev": "error", "id": job_id, "message": str(exc), "status": "error", "reason": reason})
            return
        except Exception as exc:  # it could not be made or cleared: no record either
            self.report({"ev": "error", "id": job_id, "message": describe_os_error(exc), "status": "error"})
            return
        if self.bench == "files":
            self.run_without_process(request, dir_fd)
            return
        cgroup = None
        try:
            born = self.cgroups_of_new_command(request)
            try:
                pid, popen, start = self.spawn_on_its_cpus(request, dir_fd)
            finally:
                cgroup = self.command_born(born)
        except Exception as exc:  # report any launch failure; the launcher itself must survive it
            self.forget_cgroup(cgroup)
            event = {"ev": "error", "id": job_id, "message": describe_os_error(exc), "status": "error"}
            write_record(dir_fd, request, dict(event, returncode=None, start=now(), end=now()))
            self.report(event)
            return
        finally:
            os.close(dir_fd)
        job = Job(job_id, pid, popen, request, start)
        job.cgroup = cgroup
        self.watch_oom(job)
        self.jobs[job.pid] = job
        self.by_id[job_id] = job
        self.groups.add(job.pid)
        if request.get("mark"):
            self.runs_seen.add(request["mark"].rsplit(".", 2)[0] + ".")
        if not request.get("quiet_start"):  # parallux itself needs only the exit event (one message less)
            self.report({"ev": "started", "id": job_id, "pid": job.pid, "start": start})

    def run_without_process(self, request, dir_fd):
        """Benchmarking only (the hello's "bench", which parallux sends when PARALLUX_BENCH_SPAWN is set in its
        environment): answer a run request as a command that exited 0 at once, without starting a process, so
        that bench/dispatch.py measures the engine, the protocol and this loop apart from process creation.
        "none": nothing is touched; "files": the work dir, its lock, command.txt, stdout.txt, stderr.txt and
        the record are made as for a real command."""
        job = Job(request["id"], 0, None, request, now())
        job.status, job.rusage = 0, resource_usage_unknown()
        if dir_fd is None:
            job.end = now()
            self.report(to_parallux(exit_event(job, None), request))
            return
        try:
            for fd in write_files(request, dir_fd):
                os.close(fd)
        except OSError as exc:
            self.report({"ev": "error", "id": job.id, "message": describe_os_error(exc), "status": "error"})
            return
        finally:
            os.close(dir_fd)
        job.end = now()
        self.report(to_parallux(record_exit(job), request))

    def move_home(self, cpus):
        """Run on these CPUs from now on (None: on every CPU again), and so do the commands born without a
        lease's CPUs."""
        if cpus is not None and not set_affinity(cpus):
            sys.stderr.write("parallux launcher: cannot move to CPUs %s\n" % cpus)
            return
        if cpus is None and self.home_cpus is not None and self.all_cpus:
            set_affinity(self.all_cpus)
        self.home_cpus = cpus

    def spawn_on_its_cpus(self, request, dir_fd):
        """Spawn the command on the CPUs its request names (its lease's: numactl, which binds it, refuses CPUs
        outside its own affinity), which it inherits from the launcher for the instant of the fork."""
        cpus = request.get("cpus")
        if not cpus or self.home_cpus is None:
            return spawn(request, dir_fd)
        set_affinity(cpus)
        try:
            return spawn(request, dir_fd)
        finally:
            set_affinity(self.home_cpus)

    def cgroup_facts(self):
        """What the hello says of the launcher's cgroups: what they name and count, and whether memory= can
        be limited here (and why not)."""
        if self.cgroups is None:
            return {"tree": None, "cpu": None, "memory": None, "memory_limit": False, "why_not": self.no_limit}
        return self.cgroups.facts()

    def cgroups_of_new_command(self, request):
        """The cgroups a command is about to be forked into, its memory limit written, the launcher in them;
        None without cgroups. A memory limit that cannot be set is the command's error (OSError)."""
        limit = request.get("memory")
        if limit and (self.cgroups is None or self.cgroups.no_limit is not None):
            raise OSError("memory=%d cannot be limited here: %s" % (
                limit, self.cgroups.no_limit if self.cgroups is not None else self.no_limit or "no cgroups"))
        if self.cgroups is None:
            return None
        try:
            return self.cgroups.prepare(limit)
        except OSError as exc:
            if limit:
                raise OSError("memory=%d could not be limited: %s" % (limit, describe_os_error(exc)))
            self.cgroups_off(exc)
            return None

    def command_born(self, born):
        """The command's cgroups once it was forked: the one it was born in where the launcher waits in the
        next command's, so that each command is born in its own with no race against its first fork; the
        launcher moves on to a fresh one."""
        if born is None or self.cgroups is None:
            return None
        try:
            self.cgroups.born(born)
            return born
        except OSError as exc:  # e.g. a delegation that ended: track by group, mark and ancestry instead
            self.cgroups_off(exc)
            return None

    def cgroups_off(self, exc):
        sys.stderr.write("parallux launcher: cgroups off: %s\n" % describe_os_error(exc))
        born_in, self.cgroups = self.cgroups, None
        self.no_limit = "cgroups were turned off: %s" % describe_os_error(exc)
        try:
            born_in.leave()
        except OSError:
            pass

    def watch_oom(self, job):
        """Where the kernel's OOM killer kills one process of a command (v1), hear of it and kill the rest."""
        if job.cgroup is not None and self.cgroups is not None:
            fd = self.cgroups.watch_oom(job.cgroup)
            if fd is not None:
                self.selector.register(fd, selectors.EVENT_READ, ("oom", job.id, fd))

    def out_of_memory(self, job_id, fd):
        """The kernel says a command's memory cgroup ran out (v1): its OOM killer killed one process of the
        tree, the launcher kills the rest, as v2's memory.oom.group would."""
        try:
            os.read(fd, 8)
        except OSError:
            pass
        job = self.by_id.get(job_id)
        if job is None or job.killed_hard:
            return
        job.kill_reason = job.kill_reason or "oom"
        job.kill_deadline = job.kill_deadline or now()
        self.kill_hard(job)

    def forget_cgroup(self, cgroup):
        if cgroup is not None and self.cgroups is not None:
            if cgroup.oom_fds is not None:
                self.selector.unregister(cgroup.oom_fds[0])
            self.cgroups.release(cgroup)

    # -- stopping ----------------------------------------------------------------------------------------

    def kill(self, job_id, grace, reason="cancelled"):
        job = self.by_id.get(job_id)
        if job is None or job.killed_hard:
            return
        job.kill_reason = job.kill_reason or reason
        deadline = now() + grace
        if job.kill_deadline is None:
            self.signal_job(job, signal.SIGTERM)
        if job.kill_deadline is None or deadline < job.kill_deadline:  # a second, harder stop shortens it
            job.kill_deadline = deadline
        if grace <= 0:
            self.kill_hard(job)

    def kill_hard(self, job):
        job.killed_hard = True
        self.signal_job(job, signal.SIGKILL)

    def signal_job(self, job, sig):
        """Signal a command's whole tree: its process group, and then what left the group. With a cgroup,
        every process in it (nothing can leave a cgroup on its own). Without, whatever carries the
        command's mark or still descends from it; a process that left the group, the session, the
        environment and the tree (``(setsid env -i prog &)``) is then found only at the end of the run,
        among this subreaper's adopted orphans (stop_everything)."""
        try_killpg(job.pid, sig)
        tree = self.tree_of(job)
        if tree is not None:
            self.cgroups.signal(tree, sig)
            return
        mark = job.request.get("mark")
        if mark:
            sweep_marks([mark], sig)
        signal_pids(descendants([job.pid]), sig)

    def tree_of(self, job):
        """The cgroup naming a command's process tree; None without one."""
        if job.cgroup is None or self.cgroups is None:
            return None
        return job.cgroup.tree

    def job_alive(self, job):
        """Whether anything of a command's tree is left (after its main process ended)."""
        if group_alive(job.pid):
            return True
        tree = self.tree_of(job)
        if tree is not None:
            return self.cgroups.populated(tree)
        mark = job.request.get("mark")
        return bool(mark and self.adopted_any() is not False and marked_pids([mark]))

    def adopted_any(self):
        """Whether this launcher has a child that is not a running command's own process: an orphan it adopted
        (a subreaper adopts every orphan below it); None when the kernel does not say. Without one, nothing a
        finished command started can be alive -- all of it would be below this launcher, a running command's
        tree holds only that command's -- and no scan of every process's environment is needed (a
        millisecond per command where hundreds of processes run)."""
        try:
            with open("/proc/self/task/%d/children" % os.getpid(), "rb") as f:
                children = f.read().split()
        except OSError:
            return None
        return any(int(pid) not in self.jobs for pid in children)

    def check_kill_deadlines(self):
        self.probes.check_deadlines()
        t = now()
        for job in list(self.by_id.values()):
            if job.kill_deadline is not None and not job.killed_hard and t >= job.kill_deadline:
                self.kill_hard(job)
            if job.status is not None and job.held_until is None and self.kill_finished(job):
                self.finish(job)

    def kill_finished(self, job):
        """A killed command counts as ended once nothing of its tree is left (or KILL was sent)."""
        if job.kill_deadline is None or job.killed_hard:
            return True
        return not self.job_alive(job)

    def next_timeout(self):
        deadlines = [j.kill_deadline for j in self.by_id.values()
                     if j.kill_deadline is not None and not j.killed_hard]
        deadlines += [j.held_until for j in self.held] + self.probes.deadlines()
        if self.attachment is not None:
            deadlines += self.attachment.deadlines()
        if self.watchdog is not None and self.connected:
            deadlines.append(self.last_input + self.watchdog)
        if self.by_id:
            deadlines.append(self.locks.next_refresh)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now()) + 0.005

    def refresh_locks(self):
        """Keep the locks of running commands fresh, which is how another host sees that they are live."""
        if self.by_id and now() >= self.locks.next_refresh:
            self.locks.refresh([job.request for job in self.by_id.values()])

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
            if self.probes.reaped(pid, status):
                continue
            job = self.jobs.pop(pid, None)
            if job is None:  # an adopted orphan (we are a subreaper): perhaps the last of a lingering group
                self.prune_lingering()
                continue
            job.status, job.rusage, job.end = status, rusage, now()
            if job.popen is not None:
                job.popen.returncode = status  # Popen must never wait for a pid we reaped (pid reuse)
            if job.kill_deadline is None and self.sigterm_is_error and killed_from_outside(status):
                # TERM or KILL that this launcher did not send: the machine's batch system (a Slurm step
                # ending) signals every process of the step at once, this one too. Wait a moment for our own
                # SIGTERM, so the record says "error", the allocation ended -- not "failed".
                job.held_until = now() + HOLD_KILLED
                self.held.append(job)
            elif self.kill_finished(job):
                self.finish(job)

    def release_held(self):
        for job in [j for j in self.held if self.terminated or now() >= j.held_until]:
            self.finish(job)

    def finish(self, job):
        if self.by_id.pop(job.id, None) is None:  # (a held one that a kill request finished meanwhile)
            return
        if job in self.held:
            self.held.remove(job)
        if self.terminated and job.kill_reason is None and job.status != 0:  # (SIGTERM reached it before
            self.stop_unasked(job)                                           # stop_everything did)
        if job.cgroup is not None and self.cgroups is not None:
            job.usage = self.cgroups.usage(job.cgroup, job.status == 0 and job.kill_reason is None)
        if self.job_alive(job):
            self.lingering[job.pid] = job.cgroup  # its background processes live on: watch for their end
            if job.cgroup is not None:
                job.cgroup.peak = None  # (they may use more yet)
        else:
            self.groups.discard(job.pid)
            self.forget_cgroup(job.cgroup)
        self.report(to_parallux(record_exit(job), job.request))

    def prune_lingering(self):
        """Forget process groups (and cgroups) that have ended, so that the final sweep never signals a
        reused pgid, and no empty cgroup is left behind."""
        for pgid, cgroup in list(self.lingering.items()):
            if group_alive(pgid) or (cgroup is not None and cgroup.tree is not None and self.cgroups is not None
                                     and self.cgroups.populated(cgroup.tree)):
                continue
            del self.lingering[pgid]
            self.groups.discard(pgid)
            self.forget_cgroup(cgroup)

    def stop_serving(self, signum=None, cause=None):
        """End the loop on its own (EOF, a signal, the watchdog, a broken output): the commands still running
        are then stopped unasked, and their exit events say why (``stopped``), so that parallux -- if it is
        still there -- reports them as ended by the launcher's end, not cancelled by anyone. For a launcher
        whose hello asked ``"sigterm": "error"`` (a Slurm step's: SIGTERM is the allocation ending), SIGTERM
        makes them end ``error`` here already: their run was cut short under them (and is retried where the
        config asks)."""
        self.running = False
        self.ending = self.ending or cause or (signal.Signals(signum).name if signum else None)
        if self.ending == "detached":
            self.ending = ENDINGS["detached"] % self.attachment.grace
        if signum == signal.SIGTERM and self.sigterm_is_error:
            self.terminated = True

    def lose_channel(self, cause):
        """The channel to parallux ended (EOF, a broken output) or fell silent (the watchdog). Without an
        attachment that ends the loop, as parallux's death would; with one the launcher goes on detached
        for its grace, since a dropped connection and parallux's death look alike from here."""
        if self.attachment is None or not self.running:
            self.stop_serving(cause=cause)
        elif self.connected:
            self.use_channel(None)
            self.attachment.detached(now())

    def use_channel(self, fds):
        """Talk to parallux over these descriptors (stdin, stdout and stderr of a new SSH channel, handed over
        by an attach), or over none (None: detached). They take the numbers of the old ones, whose channel is
        gone; what was queued for it is dropped (the journal keeps what matters), its transfers abandoned."""
        if self.connected:
            self.selector.unregister(self.infd)
        if self.watching_output:
            self.selector.unregister(self.outfd)
            self.watching_output = False
        sources = fds or [os.open(os.devnull, os.O_RDWR)] * 3
        for source, target in zip(sources, (self.infd, self.outfd, 2)):
            os.dup2(source, target)
        for source in set(sources):
            os.close(source)
        self.outbuf, self.frames = [], Frames()
        self.files.abandon()  # (parallux gave up the transfers of a connection that dropped)
        self.connected = fds is not None
        if self.connected:
            os.set_blocking(self.outfd, False)
            grow_pipes(self.infd, self.outfd)
            self.selector.register(self.infd, selectors.EVENT_READ, "in")
            self.last_input = now()

    def offer_attach(self, token, grace):
        """What the hello says of reattaching: where (the socket, this pid), or why it cannot be."""
        if self.attachment is None:
            self.attachment, why = Attachment.open(token, grace)
            if self.attachment is None:
                return {"attach": None, "attach_error": why}
            self.selector.register(self.attachment.listener, selectors.EVENT_READ, "listen")
        return {"attach": {"path": self.attachment.path, "pid": os.getpid()}}

    def hear_attach(self, conn):
        """A connection to the attach socket said something: once it has said all, attach its channel."""
        heard = self.attachment.receive(conn, self.selector)
        if heard is None:
            return
        request, fds = heard
        self.use_channel(fds)
        self.attachment.attached(conn)
        journal = self.attachment.journal
        self.send({"ev": "attached", "got": self.got, "seq": journal.seq, "pid": os.getpid()})
        self.outbuf.extend(journal.since(int(request.get("seq") or 0)))

    def guardian_gone(self):
        """Whether the guardian died under this launcher (it was killed: it never ends before its launcher).
        Its death is the launcher's: whatever stops the commands now, they end ``error``."""
        return self.guardian is not None and os.getppid() != self.guardian

    def stop_unasked(self, job):
        """Mark a command the launcher stops by itself as it ends: with why, and as ``error`` where that is
        a death (its guardian's) or a batch system's end (``terminated``), else ``cancelled``."""
        if self.guardian_gone():
            job.kill_reason, job.stopped = "error", ("guardian", ENDINGS["guardian"] % self.guardian)
        else:
            job.kill_reason = "error" if self.terminated else "cancelled"
            job.stopped = (self.ending, ENDINGS.get(self.ending, self.ending))

    def stop_everything(self):
        """Stop everything this launcher started: TERM, a short grace, then KILL; then write the record of
        every command that was still running, so that no command ends without one; then release the work
        dirs' locks. "Everything" is every process group it started, every process below it (it is a
        subreaper, so the orphans of every command are its children), every process in its cgroups and
        every process carrying a mark of its runs."""
        for sig in (signal.SIGTERM, signal.SIGHUP):  # a second TERM must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        # Marks are "<run id>.<seq>.<attempt>": sweeping by run catches the setsid'd leftovers of
        # commands that already finished, too.
        runs = list(self.runs_seen) + [j.request["mark"] for j in self.by_id.values() if j.request.get("mark")]
        for job in self.by_id.values():  # their records must say they were stopped, not that they failed
            if job.kill_reason is None and self.ending is not None:
                self.stop_unasked(job)
            job.kill_reason = job.kill_reason or "cancelled"  # (a quit request)
            job.kill_deadline = job.kill_deadline or now()
        for job in list(self.held):  # reaped already: only their records are left to write
            self.finish(job)
        self.probes.stop()
        if self.cgroups is not None:
            self.cgroups.leave()  # out of the cgroups about to be killed
        left = self.signal_everything(runs, signal.SIGTERM)
        if left or self.by_id:  # the usual end of a run finds nothing left: no grace, no KILL
            deadline = now() + self.exit_grace
            while now() < deadline and (any(group_alive(g) for g in self.groups) or descendants([os.getpid()])):
                time.sleep(0.02)
                self.reap()
            self.signal_everything(runs, signal.SIGKILL)
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
        self.reap()
        if self.cgroups is not None:
            self.cgroups.close()
        self.locks.release_all()

    def signal_everything(self, runs, sig):
        """Send sig to everything stop_everything stops; how many processes and groups that reached."""
        reached = sum(1 for pgid in self.groups if try_killpg(pgid, sig))
        reached += signal_pids(descendants([os.getpid()]), sig)
        if self.cgroups is not None:
            reached += self.cgroups.signal_all(sig)
        else:  # (in a cgroup, nothing can be outside it that a mark would find)
            reached += sweep_marks(runs, sig, prefix=True)
        return reached

    # -- main loop -----------------------------------------------------------------------------------------

    def serve(self):
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        os.set_blocking(self.outfd, False)  # see flush()
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(self.infd, selectors.EVENT_READ, "in")
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        try:
            while self.running:
                self.watch_output()
                ready = [key.data for key, _ in self.selector.select(self.next_timeout())]
                if "wake" in ready:  # exits first: their events free slots that parallux is waiting for
                    drain(wake_r)
                    self.reap()
                    self.flush()
                if "in" in ready:
                    self.read_requests()
                for item in ready:
                    if isinstance(item, tuple) and item[0] == "oom":  # a v1 memory cgroup's OOM notification
                        self.out_of_memory(item[1], item[2])
                    elif isinstance(item, tuple):  # ("attach", socket): a new channel handed over
                        self.hear_attach(item[1])
                if "listen" in ready:
                    self.attachment.accept(self.selector)
                self.reap()
                self.release_held()
                self.check_kill_deadlines()
                self.refresh_locks()
                self.flush()
                self.check_silence()
        finally:
            self.stop_everything()
            self.flush_before_exit(EXIT_FLUSH)
            if self.attachment is not None:  # (after the last events: its bridge then ends, and the channel)
                self.attachment.close()

    def check_silence(self):
        """The watchdog: parallux silent for that long is gone (or cut off); detached, the grace is up."""
        attachment = self.attachment
        if attachment is not None:
            attachment.expire(self.selector)
            if attachment.detached_at is not None:
                if now() - attachment.detached_at > attachment.grace:
                    self.stop_serving(cause="detached")
                return
        if self.watchdog is not None and now() - self.last_input > self.watchdog:
            self.lose_channel("watchdog")

    def watch_output(self):
        """Wake up for a writable stream only while events wait for it."""
        wanted = bool(self.outbuf)
        if wanted != self.watching_output:
            if wanted:
                self.selector.register(self.outfd, selectors.EVENT_WRITE, "out")
            else:
                self.selector.unregister(self.outfd)
            self.watching_output = wanted


# -- probes ------------------------------------------------------------------------------------------------
#
# goal.probe("gcc", "gcc --version"): a command run once on each machine, before its commands, whose output the
# run log keeps. No work dir, no record, no cgroup: its output goes to two unnamed temporary files (never a pipe
# that a chatty probe could fill while this loop does not read it), read when it exits. It runs in a session of
# its own on the launcher's CPUs; its timeout kills its group, and so does its end (what it left running must
# not run beside the commands that follow).

PROBE_TIMEOUT = 60.0  # seconds, unless the request says
PROBE_OUTPUT = 4096   # bytes of output kept: stdout, then stderr


class Probe(object):
    def __init__(self, request, popen, outputs, timeout):
        self.id = request.get("id")
        self.popen = popen
        self.outputs = outputs
        self.timeout = timeout
        self.deadline = now() + timeout
        self.timed_out = False


# -- run templates ------------------------------------------------------------------------------------------
#
# A campaign's commands share nearly everything a run request says (the environment, the workspace, the
# options its record keeps), so parallux sends that once per set of options, and each run request names it:
#
#   {"op": "template", "tpl": 1, "run": {"env": {...}, "workspace": "/w", "cwd": null, "quiet_start": true,
#                                        "mark": "<run>@r1.", "record": {...}, "metrics": ..., "memory": ...}}
#   {"op": "run", "id": 7, "tpl": 1, "relpath": "a/1", "text": "make", "seq": 3, "attempt": 0, "name": "c3"}
#
# which stands for the full request: the template's fields, "work_dir" its workspace + "/" + relpath (or the
# request's own "work_dir"), "command_text" the text, "argv" ["sh", "-c", text] (or the request's own), "mark"
# the template's followed by "<seq>.<attempt>", the env the template's plus PARALLUX_WORK_RELPATH,
# PARALLUX_WORK_DIR, PARALLUX_METRICS and the request's "env_add", the record the template's plus name,
# work_relpath, attempt and the request's "record_add"; "cpus" and "id" as given.

NO_LEASE = (("cores", list), ("numa_node", lambda: None), ("gpus", list), ("attempts_before", list))  # (a
# command's record says these of its lease and earlier attempts; its "record_add" gives them where it has any)


class RunTemplates(object):
    def __init__(self):
        self.known = {}

    def define(self, request):
        self.known[request["tpl"]] = request["run"]

    def expand(self, request):
        """The full run request a templated one stands for (KeyError: its template was never defined)."""
        full = dict(self.known[request["tpl"]])
        relpath, text = request["relpath"], request["text"]
        workspace = full["workspace"]
        work_dir = request.get("work_dir") or (("" if workspace == "/" else workspace) + "/" + relpath)
        env = dict(full["env"])
        env["PARALLUX_WORK_RELPATH"], env["PARALLUX_WORK_DIR"] = relpath, work_dir
        env["PARALLUX_METRICS"] = work_dir + "/" + METRICS_NAME
        if request.get("env_add"):
            env.update(request["env_add"])
        record = dict(full["record"])
        record["name"], record["work_relpath"], record["attempt"] = request["name"], relpath, request["attempt"]
        for field, empty in NO_LEASE:
            record[field] = empty()
        if request.get("record_add"):
            record.update(request["record_add"])
        full.update(op="run", id=request["id"], work_dir=work_dir, command_text=text, argv=request.get("argv") or ["sh", "-c", text],
                    mark="%s%d.%d" % (full["mark"], request["seq"], request["attempt"]), env=env, record=record)
        if request.get("cpus") is not None:
            full["cpus"] = request["cpus"]
        return full


class Probes(object):
    """The probes running now, by pid; each one's event is sent when it is reaped."""

    def __init__(self, send):
        self.send = send
        self.running = {}

    def start(self, request):
        import tempfile  # here: every launcher pays for its imports at its start, and few run a probe
        outputs = []
        try:
            timeout = float(request.get("timeout") or PROBE_TIMEOUT)
            outputs = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
            popen = subprocess.Popen(["sh", "-c", request["command"]], stdin=subprocess.DEVNULL,
                                     stdout=outputs[0], stderr=outputs[1], env=probe_env(request),
                                     close_fds=True, start_new_session=True)
        except (OSError, ValueError) as exc:
            for output in outputs:
                output.close()
            self.send(probe_event(request.get("id"), None, b"", describe_os_error(exc)))
            return
        self.running[popen.pid] = Probe(request, popen, outputs, timeout)

    def reaped(self, pid, status):
        """Whether ``pid`` was a probe's: then its event is sent."""
        probe = self.running.pop(pid, None)
        if probe is None:
            return False
        probe.popen.returncode = status  # Popen must never wait for a pid we reaped (pid reuse)
        try_killpg(pid, signal.SIGKILL)
        output = b""
        for stream in probe.outputs:
            stream.seek(0)
            output += stream.read(PROBE_OUTPUT + 1)
            stream.close()
        if probe.timed_out:
            self.send(probe_event(probe.id, None, output, "timed out after %g s" % probe.timeout))
        else:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
            self.send(probe_event(probe.id, code, output, None))
        return True

    def deadlines(self):
        return [probe.deadline for probe in self.running.values() if not probe.timed_out]

    def check_deadlines(self):
        t = now()
        for pid, probe in self.running.items():
            if not probe.timed_out and t >= probe.deadline:
                probe.timed_out = True
                try_killpg(pid, signal.SIGKILL)

    def stop(self):
        for pid in self.running:
            try_killpg(pid, signal.SIGKILL)


def probe_env(request):
    """The launcher's environment plus the request's, as the commands get it (command_env), as a mapping."""
    items, _ = command_env(request)
    return dict(item.split(b"=", 1) for item in items)


def probe_event(probe_id, returncode, output, error):
    return {"ev": "probe", "id": probe_id, "returncode": returncode,
            "output": output[:PROBE_OUTPUT].decode("utf-8", "replace"), "truncated": len(output) > PROBE_OUTPUT,
            "error": error}


# -- the work dir: nothing written through a link ---------------------------------------------------------
#
# Where the trust ends: the workspace's path is the user's, resolved as the system resolves it (a
# ~/parallux -> /scratch/me link works), except that a link on it which neither this user nor root made is
# refused. Below the workspace no link is followed at all: each directory down to the work dir is opened
# relative to its parent with O_NOFOLLOW, each file the launcher writes there is created with
# O_EXCL|O_NOFOLLOW relative to the work dir's descriptor and replaced only by a rename within it, and what
# stands where a file is to be written -- an earlier output, a link, dangling or not -- is moved into .history
# first, never followed (the openat idiom of rsync and of shutil.rmtree with dir_fd).

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | O_CLOEXEC
LINK_HOPS = 40  # links followed on the workspace's path before it counts as a loop (the kernel's limit)


class UnsafeWorkDir(Exception):
    """A link where none is followed (below the workspace), or one on the workspace's path that another user
    made: the command ends "error" naming it, and nothing is written there."""


def open_work_dir(request, create):
    """The request's work dir, opened: its descriptor, and whether it was made just now (made with its parents
    when missing and ``create``). parallux sends the workspace; a bare request's is the work dir's parent."""
    work_dir = os.path.normpath(request["work_dir"])
    return open_below_workspace(work_dir, request.get("workspace") or os.path.dirname(work_dir), create)


def open_below_workspace(work_dir, workspace, create):
    workspace = os.path.normpath(workspace)
    prefix = workspace.rstrip("/") + "/"
    if not work_dir.startswith(prefix) or work_dir == prefix:
        raise UnsafeWorkDir("work dir %s is not inside the workspace %s" % (work_dir, workspace))
    if workspace not in CHECKED_WORKSPACES:
        check_link_owners(workspace)
    fd, made, path = HELD_WORKSPACES.get(workspace), False, workspace
    if fd is None:
        fd = open_workspace(workspace, create)
        if KEEP_WORKSPACES[0] and len(HELD_WORKSPACES) < 16:
            HELD_WORKSPACES[workspace] = fd
    names = work_dir[len(prefix):].split("/")
    try:
        for index, name in enumerate(names):
            path = os.path.join(path, name)
            child, made = open_dir_at(fd, name, path, create, new_likely=index == len(names) - 1)
            if HELD_WORKSPACES.get(workspace) != fd:
                os.close(fd)
            fd = child
    except BaseException:
        if HELD_WORKSPACES.get(workspace) != fd:
            os.close(fd)
        raise
    return fd, made


# A launcher keeps each workspace open from its first command on (the path was checked then, see
# check_link_owners): a work dir is opened from it, not by the workspace's path again, three times per
# command (its start, its record, its lock at the end). Anything else that opens work dirs (the views)
# opens the workspace each time.
KEEP_WORKSPACES = [False]
HELD_WORKSPACES = {}  # workspace -> its descriptor


def open_workspace(workspace, create):
    """The workspace itself is opened by its path, links and all: that path is the user's choice."""
    try:
        return os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            raise
    os.makedirs(workspace, exist_ok=True)
    return os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)


CHECKED_WORKSPACES = set()  # whose whole path check_link_owners found sound: once per launcher (per run)


def check_link_owners(path):
    """Refuse a link on the way to path that neither this user nor root owns (as the kernel's
    protected_symlinks does in sticky directories): in a shared directory, another user's link would send the
    run's files to a place of their choosing. Each link is checked, and so is the path it leads to."""
    me, todo, done, hops = os.geteuid(), [p for p in path.split("/") if p], "/", 0
    while todo:
        name = todo.pop(0)
        if name in (os.curdir, os.pardir):
            done = done if name == os.curdir else os.path.dirname(done)  # (done holds no link)
            continue
        here = os.path.join(done, name)
        try:
            info = os.lstat(here)
        except OSError:
            return  # missing: made as a directory, as is the rest; or the open that follows says why not
        if not stat.S_ISLNK(info.st_mode):
            done = here
            continue
        if info.st_uid not in (me, 0):
            raise UnsafeWorkDir("refusing to follow the symbolic link %s on the workspace's path: it belongs to "
                                "user %d, not to this user (%d) or root" % (here, info.st_uid, me))
        hops += 1
        if hops > LINK_HOPS:
            return  # a loop: the open reports it
        target = os.readlink(here)
        todo[:0] = [p for p in target.split("/") if p]
        done = "/" if target.startswith("/") else done
    CHECKED_WORKSPACES.add(path)


def open_dir_at(parent, name, path, create, new_likely=False):
    """The directory name in parent (path: its name in errors), never through a link; made when missing and
    ``create`` (first thing, when it is ``new_likely``: a command's own dir usually is). Its descriptor, and
    whether it was made just now."""
    made = False
    if create and new_likely:
        made = make_dir_at(parent, name)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent), made
    except FileNotFoundError as exc:
        if not create or new_likely:
            raise OSError(exc.errno, exc.strerror, path)
    except OSError as exc:
        raise refusal(parent, name, path, exc)
    made = make_dir_at(parent, name)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent), made
    except OSError as exc:
        raise refusal(parent, name, path, exc)


def make_dir_at(parent, name):
    """Whether the directory was made; False when something has that name (a directory made meanwhile, say by
    another launcher: it is opened, if it is one)."""
    try:
        os.mkdir(name, 0o777, dir_fd=parent)
        return True
    except FileExistsError:
        return False


def refusal(parent, name, path, exc):
    """What to raise when a directory could not be opened: a link is refused by name; anything else as it is."""
    if is_link_at(parent, name):
        return UnsafeWorkDir("refusing to follow the symbolic link %s: parallux follows no link below the "
                             "workspace" % path)
    return OSError(exc.errno, exc.strerror, path)


def is_link_at(dir_fd, name):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def exists_at(dir_fd, name):
    """Whether anything, a dangling link too, has that name in the directory."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def create_at(dir_fd, name, mode=0o666):
    """A new file for writing in the directory: its fd. Never an existing file, never through a link."""
    return os.open(name, CREATE_FLAGS, mode, dir_fd=dir_fd)


def write_at(dir_fd, name, data, mode=0o666):
    """A new file in the directory holding data."""
    fd = create_at(dir_fd, name, mode)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def replace_at(dir_fd, name, data, temp, mode=0o666):
    """Replace name in the directory with a file holding data, whole: written under the name temp and renamed
    over name (which replaces a link, never writes through it). temp is the launcher's own name: what a
    crash left there, or a link planted there, is removed first."""
    try:
        write_at(dir_fd, temp, data, mode)
    except FileExistsError:
        os.unlink(temp, dir_fd=dir_fd)
        write_at(dir_fd, temp, data, mode)
    os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def read_at(dir_fd, name, limit):
    """Up to limit bytes of a file in the directory (or of a file by its path, dir_fd None), not through a link
    as its last component; OSError (ELOOP for a link) when it cannot be read. Only a regular file: a FIFO
    planted there would block the launcher's one loop in open() or read()."""
    fd = os.open(name, READ_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        data = b""
        while len(data) < limit:
            part = os.read(fd, limit - len(data))
            if not part:
                break
            data += part
        return data
    finally:
        os.close(fd)


def keep_history(dir_fd, work_dir):
    """Move an earlier run's files aside so that nothing a command wrote is ever overwritten: whatever has one
    of their names (a link, dangling or not, too) is moved as it is into .history/N, never followed."""
    present = [n for n in OUTPUT_NAMES if exists_at(dir_fd, n)]
    if not present:
        return
    path = os.path.join(work_dir, HISTORY_DIR)
    history = open_dir_at(dir_fd, HISTORY_DIR, path, True)[0]
    try:
        target = new_history_entry(history, path)
        try:
            for name in present:
                os.rename(name, name, src_dir_fd=dir_fd, dst_dir_fd=target)
        finally:
            os.close(target)
    finally:
        os.close(history)


def new_history_entry(history, path):
    """A new numbered directory in .history, the one after the highest, opened."""
    index = 1 + max([int(n) for n in os.listdir(history) if n and set(n) <= DIGITS] or [0])
    while True:
        try:
            os.mkdir(str(index), 0o777, dir_fd=history)
            return open_dir_at(history, str(index), os.path.join(path, str(index)), False)[0]
        except FileExistsError:
            index += 1


DIGITS = set("0123456789")


# -- spawning ---------------------------------------------------------------------------------------------

def prepare_work_dir(request, lock=None):
    """The work dir opened (made when missing), locked, and emptied of an earlier run's outputs: its fd.
    ``lock(dir_fd, work_dir, request)`` runs before anything in an existing work dir is touched
    (WorkDirLocks.take)."""
    fd, fresh = open_work_dir(request, create=True)
    try:
        if lock is not None:
            lock(fd, request["work_dir"], request)
        if not fresh:
            keep_history(fd, request["work_dir"])
    except BaseException:
        os.close(fd)
        raise
    return fd


BENCH_MODES = ("none", "files")


def wrapped_of(request):
    """The command line as run, shell-quoted (command.txt and the record keep it): the request's "wrapped", or
    made here of its argv (parallux sends none: quoting is this process's work, not its loop's)."""
    if request.get("wrapped") is None and request.get("argv"):
        request["wrapped"] = " ".join(shlex.quote(part) for part in request["argv"])
    return request.get("wrapped")


def write_files(request, dir_fd):
    """Write command.txt into the command's prepared work dir and create its stdout.txt and stderr.txt: their
    fds."""
    text = request.get("command_text", "") + "\n"
    if wrapped_of(request):
        text += "# as run:\n" + request["wrapped"] + "\n"
    write_at(dir_fd, "command.txt", text.encode("utf-8", "surrogateescape"))
    out = create_at(dir_fd, "stdout.txt")
    try:
        return out, create_at(dir_fd, "stderr.txt")
    except BaseException:
        os.close(out)
        raise


def spawn(request, dir_fd):
    """Write the command's files into its prepared work dir, then start it in a new session with its output
    redirected."""
    out, err = write_files(request, dir_fd)
    try:
        env, path = command_env(request)
        argv = request["argv"]
        cwd = request.get("cwd") or request["work_dir"]
        executable = resolve(argv[0], path)
        start = now()
        if FAST_SPAWN[0] and executable.startswith("/"):
            try:
                return fast_spawn(argv, executable, env, cwd, out, err), None, start
            except TypeError:  # this Python's _posixsubprocess differs: use Popen from now on
                FAST_SPAWN[0] = False
        popen = subprocess.Popen(argv, executable=executable, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 cwd=cwd, env=dict(item.split(b"=", 1) for item in env), close_fds=True,
                                 start_new_session=True)
    finally:
        os.close(out)
        os.close(err)
    return popen.pid, popen, start


# subprocess.Popen spends about as long in Python (building its object, re-encoding the environment) as the
# fork and exec themselves. On the Pythons whose _posixsubprocess.fork_exec signature is known, call it the
# way Popen does, with what spawn() already prepared; anywhere else (a remote host's Python), use Popen.
FAST_SPAWN = [sys.version_info[:2] in ((3, 11), (3, 12))]
_DEVNULL = []


def fast_spawn(argv, executable, env_list, cwd, out_fd, err_fd):
    """fork+exec in a new session with stdin from /dev/null; raises OSError as Popen would."""
    import _posixsubprocess
    if not _DEVNULL:
        _DEVNULL.append(os.open(os.devnull, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
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


_BASE_ENV = []
_BASE_ITEMS = {}  # the names a request sets -> the launcher's other variables, as b"NAME=value" items
_RESOLVED = {}


def command_env(request):
    """The launcher's environment plus the request's: the b"NAME=value" items the fork takes, and the command's
    PATH. The launcher's part is encoded and joined once for the names a run's requests set, not per spawn."""
    if not _BASE_ENV:
        _BASE_ENV.append(dict(os.environb))
    base = _BASE_ENV[0]
    extra = {}
    for key, value in (request.get("env") or {}).items():
        extra[os.fsencode(key)] = os.fsencode(value)
    extra[b"SHLVL"] = b"1"  # a bash child would otherwise source .bashrc again under SSH
    if request.get("mark"):
        extra[MARK_VAR.encode()] = os.fsencode(request["mark"])
    names = tuple(extra)
    items = _BASE_ITEMS.get(names)
    if items is None:
        if len(_BASE_ITEMS) >= 64:  # (requests that set ever other names: no cache growing without end)
            _BASE_ITEMS.clear()
        items = _BASE_ITEMS[names] = [k + b"=" + v for k, v in base.items() if k not in extra]
    return items + [k + b"=" + v for k, v in extra.items()], extra.get(b"PATH", base.get(b"PATH"))


def resolve(program, path):
    """The program's path by the command's own PATH, looked up once per (program, PATH)."""
    key = (program, path)
    found = _RESOLVED.get(key)
    if found is not None:
        return found
    if "/" in program or path is None or not all(p.startswith(b"/") for p in path.split(b":")):
        return program  # relative PATH entries depend on the command's cwd: leave those to Popen
    found = shutil.which(program, path=os.fsdecode(path))
    if found is None:
        return program  # let Popen report it as it would
    _RESOLVED[key] = found
    return found


def describe_os_error(exc):
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return "%s%s" % (exc.strerror, ": %s" % where if where != "" else "")
    return "%s: %s" % (type(exc).__name__, exc)


# -- results ----------------------------------------------------------------------------------------------

def killed_from_outside(status):
    """Whether a command ended by TERM or KILL, itself or as its shell reports it (128 + N)."""
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status) in (signal.SIGTERM, signal.SIGKILL)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) in (128 + signal.SIGTERM, 128 + signal.SIGKILL)


ENDINGS = {  # why a launcher ended by itself, in words (the "stopped" of its commands' exit events)
    "eof": "its input was closed",
    "output": "it could not write to parallux",
    "watchdog": "it heard nothing from parallux for its whole watchdog period",
    "SIGHUP": "it got SIGHUP",
    "SIGTERM": "it got SIGTERM",
    "guardian": "its guardian process %d was killed",  # (it ends only after its launcher, unless killed)
    "detached": "its connection to parallux dropped and nothing reattached to it within %g s (reconnect=)",
}
TERMINATED = "the launcher was stopped by SIGTERM (a batch system ending the job, a shutdown?)"


UNREAD = ("pid", "killed", "wall_seconds", "accounting")  # (in the record; parallux reads them from there)


def to_parallux(event, request):
    """An exit event as parallux's requests (``quiet_start``) get it: without what only the record needs."""
    if request.get("quiet_start"):
        for key in UNREAD:
            event.pop(key, None)
    return event


def record_exit(job):
    """The exit event of a command that ended, and its completion record written in its work dir, which is
    opened again as it was at the start: never through a link."""
    try:
        dir_fd = open_work_dir(job.request, create=False)[0]
    except (OSError, UnsafeWorkDir) as exc:
        event = exit_event(job, None)
        event["record_error"] = describe_os_error(exc)
        return event
    try:
        event = exit_event(job, dir_fd)
        write_record(dir_fd, job.request, event)
        return event
    finally:
        os.close(dir_fd)


def exit_event(job, dir_fd):
    status = job.status
    signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    returncode = -signum if signum is not None else os.WEXITSTATUS(status)
    if signum is None and job.kill_deadline is not None and 128 < returncode < 128 + 65:
        signum = returncode - 128  # sh reports its child's signal death as 128+N: we sent that signal
    ru, used = job.rusage, job.usage
    event = {
        "ev": "exit", "id": job.id, "pid": job.pid, "returncode": returncode, "signal": signum,
        "killed": job.kill_deadline is not None, "start": job.start, "end": job.end,
        "status": job.kill_reason if job.kill_reason else ("ok" if returncode == 0 else "failed"),
        "wall_seconds": round(job.end - job.start, 6),
        # the whole tree's, where its cgroups count them; else the rusage of wait4 (the processes waited for)
        "user_seconds": used.get("user_seconds", round(ru.ru_utime, 6)),
        "system_seconds": used.get("system_seconds", round(ru.ru_stime, 6)),
        "max_rss_kb": used["peak_bytes"] // 1024 if "peak_bytes" in used else ru.ru_maxrss,
    }
    if "user_seconds" in used or "peak_bytes" in used:
        event["accounting"] = {"cpu": "cgroup" if "user_seconds" in used else "rusage",
                               "memory": "cgroup" if "peak_bytes" in used else "rusage"}
    if job.request.get("memory"):
        event["memory_limit"] = job.request["memory"]
    if used.get("oom_kills") and event["status"] in ("ok", "failed", "oom"):  # the kernel's OOM killer struck
        event["status"] = "oom"
    if job.stopped is not None:  # stopped by the launcher's own end, which parallux did not ask for
        cause, event["stopped"] = job.stopped
        if event["status"] == "error":
            died = cause == "guardian"
            event["reason"] = "died" if died else "terminated"
            event["error"] = event["stopped"] if died else TERMINATED
    if event["status"] == "ok":
        add_metrics(event, job.request.get("metrics"), dir_fd)
    if event["status"] != "ok":  # what a failure report shows: parallux then never has to fetch a file
        event["stderr_tail"] = stderr_tail(dir_fd) if dir_fd is not None else None
    return event


def stderr_tail(dir_fd):
    """The end of a command's stderr.txt (its last STDERR_TAIL bytes, from the start of a line), or None."""
    try:
        fd = open_output(dir_fd, "stderr.txt")  # (a regular file only: a FIFO there would block the loop)
    except OSError:
        return None
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, STDERR_TAIL, max(0, size - STDERR_TAIL)) if size else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    return text[text.find("\n") + 1:] if size > STDERR_TAIL and "\n" in text else text


def write_record(dir_fd, request, event):
    """The completion record beside the outputs: what ran, how it ended, what it cost."""
    record = dict(request.get("record") or {})
    record.update({k: v for k, v in event.items() if k not in ("ev", "id", "stderr_tail")})
    record["command"] = request.get("command_text")
    record["wrapped"] = wrapped_of(request)
    try:
        # the C encoder (indent= is pure Python); written aside and renamed, so a record is never partial
        replace_at(dir_fd, RECORD_NAME, (encode_sorted(record) + "\n").encode("utf-8"),
                   RECORD_NAME + ".tmp")
    except OSError as exc:
        event["record_error"] = describe_os_error(exc)


# -- metrics ----------------------------------------------------------------------------------------------
#
# A command that exited 0 is asked for its figures here, where its files are (on the runner: nothing is
# fetched): the patterns of its metrics= option, searched in its stdout, and the NAME VALUE lines or the JSON
# object it may have written to $PARALLUX_METRICS (metrics.txt in its work dir). A declared metric that is
# not there, a value that is no finite number, a metrics file that cannot be read (a link: never followed),
# or one name with two values, makes the command "failed", its error saying which: a broken parser never
# leaves a silent gap in a benchmark's figures.
#
# stdout may be gigabytes, and this runs in the launcher's one loop: it is read from its end, in blocks cut
# at line starts, and a pattern's last match is the one that counts (a benchmark prints progress, then its
# result), so the usual search reads one block. At most its last METRICS_SCAN bytes are searched.

METRICS_SCAN = 64 << 20     # bytes of stdout, from its end, searched for metrics= patterns
METRICS_BLOCK = 1 << 20     # bytes of stdout read at once
METRICS_LINE = 4 << 20      # a longer line is searched in pieces of this size (no match spans two)
METRICS_FILE_LIMIT = 1 << 20
METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z")
MEASURES = ("wall", "cpu", "memory")  # what parallux measures itself: no metric may take their names


def add_metrics(event, declared, dir_fd):
    """Put the command's metrics in its exit event; make it "failed" when they are not all there."""
    if dir_fd is None:
        if declared:
            event["status"], event["error"] = "failed", "metrics not read: its work dir cannot be opened"
        return
    try:
        values, problems = collect_metrics(dir_fd, declared or {})
    except Exception as exc:  # (whatever went wrong, the launcher must go on, and the command not pass)
        values, problems = {}, ["metrics not read: %s" % describe_os_error(exc)]
    if values or declared:
        event["metrics"] = values
    if problems:
        event["status"], event["error"] = "failed", "; ".join(problems)


def collect_metrics(dir_fd, declared):
    """The values of the metrics file, then of the patterns on stdout; the problems found, in words."""
    values, problems = metrics_file(dir_fd)
    patterns = dict((name, pattern) for name, pattern in declared.items() if pattern is not None)
    found, problem = stdout_metrics(dir_fd, patterns) if patterns else ({}, None)
    if problem:
        problems.append(problem)
    for name in sorted(found):
        if name in values and values[name] != found[name]:
            problems.append("metric %r is %r in stdout (pattern %r) but %r in $PARALLUX_METRICS"
                            % (name, found[name], patterns[name], values[name]))
        values[name] = found[name]
    for name in sorted(declared):
        if declared[name] is None and name not in values:
            problems.append("metric %r not found in $PARALLUX_METRICS (%s)" % (name, METRICS_NAME))
    return values, problems


def open_output(dir_fd, name):
    """A file of the work dir opened to read, or None when it is missing. Never through a link, and never a
    FIFO or a device, which could block the launcher's loop: OSError says why."""
    try:
        fd = os.open(name, READ_FLAGS | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP or is_link_at(dir_fd, name):
            raise OSError(exc.errno, "it is a symbolic link, which parallux does not follow in a work dir")
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "it is not a regular file")
    return fd


def metrics_file(dir_fd):
    """What the command wrote to $PARALLUX_METRICS: NAME VALUE lines (blank lines and # comments aside;
    a name given twice: its last value), or one JSON object of name -> number."""
    where = "$PARALLUX_METRICS (%s)" % METRICS_NAME
    try:
        fd = open_output(dir_fd, METRICS_NAME)
        if fd is None:
            return {}, []
        try:
            data = read_fd(fd, METRICS_FILE_LIMIT + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        return {}, ["cannot read %s: %s" % (where, exc.strerror or exc)]
    if len(data) > METRICS_FILE_LIMIT:
        return {}, ["%s is larger than %d bytes: no metrics file" % (where, METRICS_FILE_LIMIT)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {}, ["%s is not UTF-8 text" % where]
    if text.lstrip().startswith("{"):
        return metrics_json(text, where)
    return metrics_lines(text, where)


def metrics_json(text, where):
    try:
        found = json.loads(text)
    except ValueError as exc:
        return {}, ["%s is not one JSON object: %s" % (where, exc)]
    if not isinstance(found, dict):
        return {}, ["%s is not one JSON object" % where]
    values, problems = {}, []
    for name, value in found.items():
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        add_file_metric(values, problems, name, number, value, where)
    return values, problems


def metrics_lines(text, where):
    values, problems = {}, []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2:
            problems.append("%s line %d is not NAME VALUE: %r" % (where, number, line[:200]))
            continue
        add_file_metric(values, problems, words[0], words[1], words[1], "%s line %d" % (where, number))
    return values, problems


def add_file_metric(values, problems, name, number, given, where):
    """Take a metric of the metrics file, or say why not (number: None when the value is not one)."""
    if not isinstance(name, str) or not METRIC_NAME.match(name) or name in MEASURES:
        problems.append("%s: %r is not a metric name (letters, digits, _ . -, up to 64; not %s)"
                        % (where, name, ", ".join(MEASURES)))
        return
    number = as_number(number) if number is not None else None
    if number is None:
        problems.append("%s: metric %r is not a number: %r" % (where, name, given))
    else:
        values[name] = number


def as_number(value):
    """A finite float from a number or its text; None when it is not one."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number - number == 0.0 else None  # (inf - inf and nan - nan are nan)


def stdout_metrics(dir_fd, patterns, block=METRICS_BLOCK, limit=METRICS_SCAN):
    """Each pattern's value in stdout.txt: its last match's first group, or the whole match. The values
    found, and a problem in words (a metric missing or not a number), or None."""
    try:
        compiled = dict((name, re.compile(pattern, re.MULTILINE)) for name, pattern in patterns.items())
    except re.error as exc:  # (checked in the config: this runner's Python may know less syntax)
        return {}, "a metrics= pattern does not compile on this runner's Python %s: %s" % (
            sys.version.split()[0], exc)
    try:
        fd = open_output(dir_fd, "stdout.txt")
        if fd is None:
            raise OSError(errno.ENOENT, "it is missing")
        try:
            size = os.fstat(fd).st_size
            found = last_matches(fd, size, compiled, block, limit)
        finally:
            os.close(fd)
    except OSError as exc:
        return {}, "metrics not read: cannot read stdout.txt: %s" % (exc.strerror or exc)
    values, problems = {}, []
    where = "stdout" if size <= limit else "the last %s of stdout" % (
        "%d MiB" % (limit >> 20) if limit % (1 << 20) == 0 else "%d bytes" % limit)
    for name in sorted(patterns):
        text = found.get(name)
        number = as_number(text) if text is not None else None
        if text is None:
            problems.append("metric %r not found in %s (pattern %r)" % (name, where, patterns[name]))
        elif number is None:
            problems.append("metric %r is not a number: %r (pattern %r)" % (name, text[:100], patterns[name]))
        else:
            values[name] = number
    return values, "; ".join(problems) or None


def last_matches(fd, size, compiled, block, limit):
    """name -> the text of its pattern's last match in the file's last ``limit`` bytes (read backwards)."""
    found, left = {}, dict(compiled)
    for text in blocks_from_end(fd, size, block, limit):
        for name, pattern in list(left.items()):
            match = None
            for match in pattern.finditer(text):
                pass
            if match is not None:
                found[name] = match.group(1) if pattern.groups else match.group(0)
                del left[name]
        if not left:
            break
    return found


def blocks_from_end(fd, size, block, limit):
    """The file's text from its end back to ``limit`` bytes before it, in blocks of whole lines (a line cut
    by the limit is left out: its start is missing, and a number there could be read wrong)."""
    floor, end, carry = max(0, size - limit), size, b""
    while end > floor:
        start = max(floor, end - block)
        data = os.pread(fd, end - start, start) + carry
        end = start
        if start > 0 and not (start == floor and os.pread(fd, 1, start - 1) == b"\n"):
            cut = data.find(b"\n")
            if cut < 0 and len(data) < max(block, METRICS_LINE):
                carry = data  # one line longer than a block: read on
                continue
            carry, data = (data[:cut + 1], data[cut + 1:]) if cut >= 0 else (b"", data)
            if start == floor:
                carry = b""
        else:
            carry = b""
        yield data.decode("utf-8", "replace")


def read_fd(fd, limit):
    data = b""
    while len(data) < limit:
        try:
            part = os.read(fd, limit - len(data))
        except BlockingIOError:
            break
        if not part:
            break
        data += part
    return data


# -- process trees ----------------------------------------------------------------------------------------

class resource_usage_unknown(object):
    ru_utime = ru_stime = 0.0
    ru_maxrss = 0


def read_work_record(path, workspace=None):
    """The completion record at path (a work dir's result.json) for --resume, its work dir reached as a command
    reaches it: never through a link below the workspace (a record found through one is another dir's)."""
    work_dir = os.path.dirname(os.path.normpath(path))
    try:
        dir_fd = open_below_workspace(work_dir, workspace or os.path.dirname(work_dir), False)[0]
    except (OSError, UnsafeWorkDir):
        return None
    try:
        return read_record(os.path.basename(path), dir_fd)
    finally:
        os.close(dir_fd)


def read_record(path, dir_fd=None):
    """A completion record as write_record left it, or None: missing, unreadable, too big, or not a JSON
    object (a record is renamed into place whole, so a partial one is not expected, but is not trusted)."""
    try:
        data = read_at(dir_fd, path, RECORD_LIMIT + 1)  # (not through a link: one planted there is no record)
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


def signal_pids(pids, sig):
    """Signal each pid; how many were reached."""
    reached = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            reached += 1
        except OSError:
            pass
    return reached


def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name: state, ppid, ... (None if it is gone)."""
    try:
        with open("/proc/%s/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()


def process_start(pid):
    """When the process started (clock ticks since boot): with the pid, it names one process, not a reused
    pid. None if there is no such process."""
    fields = proc_stat(pid) if isinstance(pid, int) and pid > 0 else None
    return int(fields[19]) if fields else None


def descendants(roots):
    """Live processes below these pids: their children, theirs, and so on (from /proc)."""
    children = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if entry.isdigit():
            fields = proc_stat(entry)
            if fields and fields[0] not in (b"Z", b"X"):
                children.setdefault(int(fields[1]), []).append(int(entry))
    found = []
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append(child)
            stack.append(child)
    return found


# -- cgroups -----------------------------------------------------------------------------------------------
#
# One interface over the two kinds of hierarchy a machine may have (BenchExec's cgroups.py, cgroupsv1.py and
# cgroupsv2.py are the model): cgroup v2, one hierarchy whose controllers a cgroup enables for its children;
# and v1, one hierarchy per controller (``memory``, ``cpuacct``). Many clusters still mount them hybrid: v1
# controllers, and a v2 ``unified`` hierarchy with no controllers, whose cgroups are still names and still
# count CPU time (``cpu.stat`` is a core file of every v2 cgroup).

CGROUP_ROOT_VAR = "PARALLUX_CGROUP_ROOT"  # a testing aid: a directory taken for /sys/fs/cgroup (find_hierarchies)
CGROUP_ACCOUNTING = ("memory", "cpuacct")  # the v1 controllers used
EFD_FLAGS = 0o2000000 | 0o4000  # EFD_CLOEXEC | EFD_NONBLOCK (as O_CLOEXEC | O_NONBLOCK on Linux)
REUSE_LEFTOVER = 1 << 20  # bytes a v1 memory cgroup may keep charged and still be reused (see keep_clean)


class Hierarchy(object):
    """One cgroup hierarchy the launcher may write: its own cgroup there (``home``), and ``parallux-<pid>``
    below it (``base``), in which each command gets a cgroup ``c<N>``."""

    def __init__(self, version, home, controllers, launcher_pid=None):
        self.version = version          # 1 or 2
        self.home = home
        self.controllers = controllers  # what it accounts: {"memory", "cpu"}, a subset
        self.base = os.path.join(home, "parallux-%d" % (launcher_pid or os.getpid()))
        self.made = 0

    def describe(self):
        return "v%d" % self.version

    def fresh(self):
        self.made += 1
        path = os.path.join(self.base, "c%d" % self.made)
        os.mkdir(path)
        return path

    def enter(self, path):
        write_cgroup_file(path, "cgroup.procs", str(os.getpid()), keep=True)

    def cgroups(self):
        """The command cgroups below base."""
        try:
            return [os.path.join(self.base, n) for n in os.listdir(self.base)
                    if os.path.isdir(os.path.join(self.base, n))]
        except OSError:
            return []

    def remove(self):
        """Remove every cgroup (waiting a moment for killed processes to be gone from them)."""
        for _ in range(50):
            for path in self.cgroups():
                remove_cgroup(path)
            try:
                os.rmdir(self.base)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


class CommandCgroups(object):
    """A command's cgroups: the one that names its tree, those that account it, and what they held at its
    birth."""

    def __init__(self, limit):
        self.limit = limit        # its memory limit in bytes, or None
        self.paths = {}           # hierarchy -> its cgroup there
        self.tree = None          # the cgroup that names its process tree (signals, "is anything left")
        self.cpu_base = (0, 0)    # (user, system) ns its cpu cgroup had counted at its birth (a reused one)
        self.oom_fds = None       # (eventfd, memory.oom_control): the kernel's OOM notification (v1)
        self.peak = None          # its peak memory as read when it ended (None: not read, or grown since)


class Cgroups(object):
    """A cgroup per command: the name of its whole process tree and, where the machine has the controllers,
    its memory limit, peak memory, OOM kills and CPU time.

    A process cannot leave its cgroup by itself: setsid, ``env -i``, double forks and daemonizing all keep
    it there, so signalling every process of the command's cgroup stops exactly its whole tree, and
    ``cgroup.kill`` ends it at once; and what the cgroup counts is what the whole tree used, also after a
    timeout killed it (the rusage of wait4 knows only the processes that were waited for).

    Where it accounts memory, the launcher enters a command's cgroup just for the fork, so that none of the
    launcher's own memory is charged to a command. The cgroup is new, its limit written before the command
    is born -- or, for a command without a limit, a v1 one an earlier command left (almost) empty, its peak
    reset (keep_clean): a memory cgroup's mkdir and rmdir cost more than all the rest.
    Where it only names the tree and counts CPU time (a v2 hierarchy without the memory controller, as in
    a hybrid mount), the launcher waits in the cgroup the *next* command will be born in: a fork lands there,
    and ``advance()`` then moves the launcher on to an empty one -- one migration per command, and no race
    with the command's first fork; emptied cgroups are reused, their CPU time read at each birth.

    They need a writable hierarchy: root, or a delegated subtree (systemd's user services, some batch
    systems). Where there is none, ``create()`` returns None and why, and commands are tracked by process
    group, mark and ancestry instead (Launcher.signal_job).
    """

    def __init__(self, hierarchies, pid=None):
        self.pid = str(pid or os.getpid())
        self.all = hierarchies
        v2 = [h for h in hierarchies if h.version == 2]
        self.memory = first(h for h in hierarchies if "memory" in h.controllers)
        self.cpu = first(h for h in hierarchies if "cpu" in h.controllers)
        self.tree = v2[0] if v2 else self.memory or self.cpu
        # The one the launcher waits in: a v2 hierarchy that only names (and counts CPU time), not memory
        self.waiting = self.tree if self.tree is not None and self.tree.version == 2 and \
            self.tree is not self.memory else None
        self.passes = [h for h in hierarchies if h is not self.waiting]
        self.current = None  # (waiting) the cgroup the launcher is in: where the next command is born
        self.free = []           # (waiting) emptied cgroups, for the next commands
        self.clean = []          # (v1 memory) emptied cgroups that kept almost nothing (keep_clean)
        # v1: the files a memory cgroup's peak and usage are read from (memory + swap where it is counted)
        self.memory_peak_file, self.memory_usage_file = "memory.max_usage_in_bytes", "memory.usage_in_bytes"
        if self.memory is not None and self.memory.version == 1 and \
                read_number(self.memory.home, ("memory.memsw.max_usage_in_bytes",)) is not None:
            self.memory_peak_file, self.memory_usage_file = \
                "memory.memsw.max_usage_in_bytes", "memory.memsw.usage_in_bytes"
        self.swap_file = None    # what turns swap off in a memory cgroup (None: nothing, and no swap to turn off)
        self.no_limit = None     # why memory= cannot be limited here (None: it can)

    @classmethod
    def create(cls):
        """The launcher's cgroups, or None; and why memory= cannot be limited (None: it can)."""
        if os.environ.get("PARALLUX_CGROUPS") == "0":  # turned off by the user (or a test of the fallback)
            return None, "PARALLUX_CGROUPS=0 turns cgroups off"
        found = find_hierarchies()
        hierarchies = choose_hierarchies(found)
        if not hierarchies:
            return None, ("no cgroup hierarchy here that parallux may write (it needs root, or a delegated "
                          "cgroup)" if not found else "no cgroup could be made below %s" % found[0][1])
        cgroups = cls(hierarchies)
        try:  # can we move ourselves there (and back, at the end)? (write access to both cgroup.procs)
            if cgroups.waiting is not None:
                cgroups.advance()
            for hierarchy in cgroups.passing():
                hierarchy.enter(hierarchy.home)
        except OSError as exc:
            cgroups.close()
            return None, "cannot move into a cgroup: %s" % describe_os_error(exc)
        cgroups.no_limit = cgroups.why_no_limit()
        return cgroups, cgroups.no_limit

    def passing(self):
        """The hierarchies the launcher enters just for a command's fork (all but the waiting one)."""
        return self.passes

    def why_no_limit(self):
        if self.memory is None:
            return ("no memory controller: neither a v1 memory hierarchy nor memory enabled for children in "
                    "the v2 one (%s)" % (self.tree.home if self.tree else "none"))
        names = ("memory.memsw.limit_in_bytes",) if self.memory.version == 1 else ("memory.swap.max",)
        probe = self.memory.home if self.memory.version == 1 else self.memory.base
        if CREATE_CGROUP_FILES or os.path.exists(os.path.join(probe, names[0])):
            self.swap_file = names[0]
        elif machine_has_swap():
            return "swap cannot be limited here (no %s) and this machine has swap" % names[0]
        return None

    def facts(self):
        """What the hello says of them."""
        return {"tree": self.tree.describe() if self.tree else None,
                "cpu": self.cpu.describe() if self.cpu else None,
                "memory": self.memory.describe() if self.memory else None,
                "memory_limit": self.no_limit is None, "why_not": self.no_limit}

    # -- a command's birth ----------------------------------------------------------------------------------

    def prepare(self, limit):
        """The new cgroups of a command about to be forked, its limit written, the launcher in them."""
        born = CommandCgroups(limit)
        try:
            for hierarchy in self.passing():
                reuse = hierarchy is self.memory and not limit and self.clean
                path = born.paths[hierarchy] = self.clean.pop() if reuse else hierarchy.fresh()
                if hierarchy is self.memory and limit:
                    self.write_limit(path, limit)
                hierarchy.enter(path)
        except BaseException:
            self.born(born)
            self.release(born)
            raise
        return born

    def write_limit(self, path, limit):
        """The limit of the whole tree, swap off: a command over it is killed, not swapped out."""
        if self.memory.version == 2:
            write_cgroup_file(path, "memory.max", str(limit))
            if self.swap_file:
                write_cgroup_file(path, self.swap_file, "0")
            try:
                write_cgroup_file(path, "memory.oom.group", "1")  # an OOM kills the whole tree (Linux 4.19)
            except OSError:
                pass
        else:
            write_cgroup_file(path, "memory.limit_in_bytes", str(limit))
            if self.swap_file:  # (memory + swap, at most the memory limit: no swap)
                write_cgroup_file(path, self.swap_file, str(limit))

    def born(self, command):
        """The command was forked (or failed to be): the launcher leaves its cgroups, and moves on to the next
        command's where it waits."""
        for hierarchy in command.paths:
            hierarchy.enter(hierarchy.home)
        if self.waiting is not None:
            command.tree = self.advance()
            command.paths[self.waiting] = command.tree
        else:
            command.tree = command.paths.get(self.tree)
        if self.cpu is self.waiting and self.cpu is not None:  # a reused cgroup: what it counted so far
            command.cpu_base = self.cpu_ns(command.tree) or (0, 0)

    def advance(self):
        """Move the launcher into an empty cgroup of the waiting hierarchy; the one it was in (None the first
        time)."""
        if self.free:
            path = self.free.pop()
        else:
            path = self.waiting.fresh()
        self.waiting.enter(path)
        born_in, self.current = self.current, path
        return born_in

    def leave(self):
        if self.current is not None:
            self.waiting.enter(self.waiting.home)
            self.current = None

    def release(self, command):
        """A command's cgroups are empty: reuse the waiting one, and a v1 memory one that kept (almost)
        nothing, its peak reset; remove the others, so that what they count starts at nothing."""
        self.forget_oom(command)
        for hierarchy, path in command.paths.items():
            if hierarchy is self.waiting:
                if path is not None:
                    self.free.append(path)
            elif not (hierarchy is self.memory and not command.limit and self.keep_clean(path, command.peak)):
                remove_cgroup(path)

    def keep_clean(self, path, peak):
        """Keep a v1 memory cgroup for a later command (without a limit) when it was left with at most
        REUSE_LEFTOVER charged (its page cache, the kernel's per-CPU charge batches), its peak reset to that:
        a mkdir and an rmdir of a memory cgroup cost more than the rest of a short command's cgroups. (What
        is left is at most the peak: a short command's needs no reading.)"""
        if self.memory.version != 1:  # (v2's memory.peak cannot be reset before Linux 6.12)
            return False
        left = peak if peak is not None and peak <= REUSE_LEFTOVER else read_number(path, (self.memory_usage_file,))
        if left is None or left > REUSE_LEFTOVER:
            return False
        try:
            write_cgroup_file(path, self.memory_peak_file, "0", keep=True)
        except OSError:
            return False
        self.clean.append(path)
        return True

    # -- what a command used ------------------------------------------------------------------------------

    def usage(self, command, ended_ok):
        """What the command's tree used, as its exit event says it: user and system seconds, peak memory,
        and the OOM kills (not asked for a command that ended ok without a limit of its own); each missing
        where no cgroup counts it."""
        used = {}
        cpu = self.cpu_ns(command.paths.get(self.cpu)) if self.cpu is not None else None
        if cpu is not None:
            used["user_seconds"] = round(max(0, cpu[0] - command.cpu_base[0]) / 1e9, 6)
            used["system_seconds"] = round(max(0, cpu[1] - command.cpu_base[1]) / 1e9, 6)
        path = command.paths.get(self.memory) if self.memory is not None else None
        if path is not None:
            peak = read_number(path, ("memory.peak",) if self.memory.version == 2 else (self.memory_peak_file,))
            if peak is not None:
                used["peak_bytes"] = command.peak = peak
            if command.limit or not ended_ok:
                used["oom_kills"] = read_keys(path, "memory.events" if self.memory.version == 2 else
                                              "memory.oom_control", "oom_kill")[0]
        return used

    def cpu_ns(self, path):
        """(user, system) nanoseconds a cgroup counted: v2 ``cpu.stat``; v1 ``cpuacct.usage_user``/``_sys``,
        or ``cpuacct.stat`` (in clock ticks); None where it has none."""
        if path is None:
            return None
        if self.cpu.version == 2:
            user, system = read_keys(path, "cpu.stat", "user_usec", "system_usec")
            return (user * 1000, system * 1000) if user is not None and system is not None else None
        user = read_number(path, ("cpuacct.usage_user",))
        system = read_number(path, ("cpuacct.usage_sys",))
        if user is not None and system is not None:
            return user, system
        tick = 1e9 / os.sysconf("SC_CLK_TCK")
        user, system = read_keys(path, "cpuacct.stat", "user", "system")
        return (int(user * tick), int(system * tick)) if user is not None and system is not None else None

    def watch_oom(self, command):
        """An eventfd the kernel signals when the command's v1 memory cgroup runs out (None elsewhere): v1 has
        no ``memory.oom.group``, its OOM killer kills one process, and the launcher kills the rest."""
        path = command.paths.get(self.memory)
        if path is None or self.memory.version != 1 or not command.limit:
            return None
        try:
            efd = new_eventfd()
        except (OSError, AttributeError):
            return None
        try:
            ofd = os.open(os.path.join(path, "memory.oom_control"), os.O_RDONLY | O_CLOEXEC)
        except OSError:
            os.close(efd)
            return None
        command.oom_fds = (efd, ofd)
        try:
            write_cgroup_file(path, "cgroup.event_control", "%d %d" % (efd, ofd))
        except OSError:
            self.forget_oom(command)
            return None
        return efd

    def forget_oom(self, command):
        for fd in command.oom_fds or ():
            os.close(fd)
        command.oom_fds = None

    # -- the processes in them ----------------------------------------------------------------------------

    def pids(self, path):
        try:
            with open(os.path.join(path, "cgroup.procs"), "rb") as f:
                return [int(p) for p in f.read().split() if p != self.pid.encode()]
        except (OSError, ValueError):
            return []

    def populated(self, path):
        events = read_cgroup_file(path, "cgroup.events")
        return b"populated 1" in events if events is not None else bool(self.pids(path))

    def signal(self, path, sig):
        reached = signal_pids(self.pids(path), sig)
        if sig == signal.SIGKILL and path != self.current:
            try:
                write_small(os.path.join(path, "cgroup.kill"), "1")  # the whole subtree, atomically (v2)
            except OSError:
                pass
        return reached

    def signal_all(self, sig):
        return sum(self.signal(path, sig) for hierarchy in self.all for path in hierarchy.cgroups())

    def close(self):
        """Leave and remove every cgroup."""
        self.leave()
        for hierarchy in self.passing():
            try:
                hierarchy.enter(hierarchy.home)
            except OSError:
                pass
        for hierarchy in self.all:
            hierarchy.remove()

    @classmethod
    def left_by(cls, launcher_pid):
        """The cgroups of a launcher that is gone, for its guardian to empty and remove; None without any."""
        hierarchies = [Hierarchy(version, home, set(), launcher_pid) for version, home, _ in find_hierarchies()]
        hierarchies = [h for h in hierarchies if os.path.isdir(h.base)]
        return cls(hierarchies, launcher_pid) if hierarchies else None


def first(items):
    for item in items:
        return item
    return None


def find_hierarchies():
    """Every cgroup hierarchy this process is in and may write: (version, its own cgroup's directory, the
    v1 controllers mounted there or None for v2), from /proc/self/cgroup and /proc/self/mountinfo.

    With PARALLUX_CGROUP_ROOT (a testing aid), that directory is taken for /sys/fs/cgroup, and the process
    for being at the root of each hierarchy there: the directory itself when it holds cgroup.controllers
    (v2), else its ``unified`` (v2) and ``memory``/``cpuacct`` (v1) directories."""
    fake = os.environ.get(CGROUP_ROOT_VAR)
    if fake:
        return fake_hierarchies(fake)
    try:
        with open("/proc/self/cgroup") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f]
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return []
    found, seen = [], set()
    for fields in mounts:
        rest = fields[fields.index("-") + 1:] if "-" in fields else []
        if len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2") or "rw" not in fields[5].split(","):
            continue
        if rest[0] == "cgroup2":
            controllers, paths = None, [o[2] for o in own if len(o) == 3 and o[:2] == ["0", ""]]
        else:
            options = set(rest[2].split(","))
            controllers = options & set(CGROUP_ACCOUNTING)
            paths = [o[2] for o in own if len(o) == 3 and set(o[1].split(",")) & controllers
                     and set(o[1].split(",")) <= options]
        if controllers == set() or not paths or (rest[0], fields[2]) in seen:
            continue
        path = cgroup_dir(fields[3], fields[4], paths[0])
        if path is not None:
            seen.add((rest[0], fields[2]))
            found.append((2 if controllers is None else 1, path, controllers))
    return found


def cgroup_dir(root, point, own):
    """Where one's own cgroup is: the mount point plus one's path below the mount's root; None when it is
    not below that root, or not writable."""
    if not own.startswith("/") or "/.." in own:
        return None
    if own != root and not own.startswith(root.rstrip("/") + "/"):
        return None
    path = point + own[len(root.rstrip("/")):]
    return path.rstrip("/") or "/" if os.access(path, os.W_OK) else None


def fake_hierarchies(root):
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return [(2, root, None)]
    found = []
    if os.path.exists(os.path.join(root, "unified", "cgroup.controllers")):
        found.append((2, os.path.join(root, "unified"), None))
    for name in sorted(os.listdir(root)):
        controllers = set(name.split(",")) & set(CGROUP_ACCOUNTING)
        if controllers and os.path.isdir(os.path.join(root, name)):
            found.append((1, os.path.join(root, name), controllers))
    return found


CREATE_CGROUP_FILES = bool(os.environ.get(CGROUP_ROOT_VAR))  # a fake tree has only the files written to it


def choose_hierarchies(found):
    """The hierarchies worth a cgroup per command, each with ``parallux-<pid>`` made in it: the v2 one (names,
    CPU time, and memory where it is delegated), and v1 ``memory`` and ``cpuacct`` for what it lacks."""
    chosen = []

    def take(version, controller):
        for found_version, home, controllers in found:
            if found_version == version and (controller is None or controller in controllers):
                made = make_base(found_version, home, controllers)
                if made is not None:
                    chosen.append(made)
                    return made
        return None

    v2 = take(2, None)
    if v2 is None or "memory" not in v2.controllers:
        take(1, "memory")
    if v2 is None and not any("cpu" in h.controllers for h in chosen):
        take(1, "cpuacct")
    return chosen


def make_base(version, home, controllers):
    """The hierarchy with ``parallux-<pid>`` made in it (and for v2, the memory controller enabled for the
    commands' cgroups where it is delegated to it); None where it cannot be made."""
    accounts = set()
    if version == 1:
        accounts = {"memory"} & controllers | ({"cpu"} if "cpuacct" in controllers else set())
    else:
        accounts.add("cpu")  # cpu.stat: a core file of every v2 cgroup, with or without the cpu controller
        if "memory" not in subtree_controllers(home) and "memory" in subtree_controllers(home, "cgroup.controllers"):
            try:  # (works for a hierarchy's root, or a cgroup with no processes: rarely for one's own)
                write_cgroup_file(home, "cgroup.subtree_control", "+memory")
            except OSError:
                pass
    hierarchy = Hierarchy(version, home, accounts)
    try:
        os.mkdir(hierarchy.base)
    except OSError:
        return None
    if version == 2 and "memory" in subtree_controllers(home):
        try:
            write_cgroup_file(hierarchy.base, "cgroup.subtree_control", "+memory")
            accounts.add("memory")
        except OSError:
            pass
    return hierarchy


def subtree_controllers(path, name="cgroup.subtree_control"):
    try:
        with open(os.path.join(path, name)) as f:
            return set(word.lstrip("+") for word in f.read().split())
    except OSError:
        return set()


def machine_has_swap():
    return MachineFacts().swap_configured()


# The cgroup files written or read for every command stay open while their cgroup lives: opening a cgroup
# file costs ten times what reading it again (pread at 0 reads it anew) or writing it again does.
OPEN_CGROUP_FILES = {}  # (directory, name, writing) -> fd


def cgroup_fd(path, name, writing, keep):
    fd = OPEN_CGROUP_FILES.get((path, name, writing))
    if fd is not None:
        return fd
    flags = (os.O_WRONLY | (os.O_CREAT | os.O_APPEND if CREATE_CGROUP_FILES else 0)) if writing else os.O_RDONLY
    fd = os.open(os.path.join(path, name), flags | O_CLOEXEC, 0o644)
    if keep:
        OPEN_CGROUP_FILES[path, name, writing] = fd
    return fd


def done_with(path, name, writing, fd, keep, failed=False):
    if not keep or failed:
        os.close(fd)
        OPEN_CGROUP_FILES.pop((path, name, writing), None)


def read_cgroup_file(path, name, keep=True):
    """A cgroup file's bytes, or None."""
    try:
        fd = cgroup_fd(path, name, False, keep)
    except OSError:
        return None
    try:
        data = os.pread(fd, 4096, 0)
    except OSError:
        done_with(path, name, False, fd, keep, failed=True)
        return None
    done_with(path, name, False, fd, keep)
    return data


def write_cgroup_file(path, name, text, keep=False):
    fd = cgroup_fd(path, name, True, keep)
    try:
        os.write(fd, text.encode("ascii") + (b"\n" if CREATE_CGROUP_FILES else b""))
    except OSError:
        done_with(path, name, True, fd, keep, failed=True)
        raise
    done_with(path, name, True, fd, keep)


def remove_cgroup(path):
    """rmdir a cgroup, its kept files closed first."""
    for key in [key for key in OPEN_CGROUP_FILES if key[0] == path]:
        os.close(OPEN_CGROUP_FILES.pop(key))
    try:
        os.rmdir(path)
    except OSError:
        pass


def read_number(path, names):
    """The first of these files that holds a number, as an int; None."""
    for name in names:
        try:
            return int(read_cgroup_file(path, name).split()[0])
        except (AttributeError, ValueError, IndexError):
            continue
    return None


def read_keys(path, name, *keys):
    """The values of these keys in a flat keyed file (``key value`` lines) as ints; None for each missing."""
    found = {}
    for line in (read_cgroup_file(path, name) or b"").splitlines():
        words = line.split()
        if len(words) == 2:
            found[words[0]] = words[1]
    try:
        return [int(found[key.encode()]) if key.encode() in found else None for key in keys]
    except ValueError:
        return [None] * len(keys)


def new_eventfd():
    if hasattr(os, "eventfd"):  # Python 3.10
        return os.eventfd(0, EFD_FLAGS)
    import ctypes  # (here: a Python without ctypes must still run the launcher)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.eventfd(0, EFD_FLAGS)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "eventfd")
    return fd


def write_small(path, text):
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.write(fd, text.encode("ascii"))
    finally:
        os.close(fd)


# -- work dir locks ----------------------------------------------------------------------------------------

LOCK_NAME = ".parallux-lock"
LOCK_REFRESH = 30.0   # seconds between refreshes of a running command's lock
LOCK_FRESH = 120.0    # seconds: a lock of another host's run not refreshed for longer is stale


class WorkDirInUse(Exception):
    """The work dir is held by another live run."""


class WorkDirLocks(object):
    """A lock file in each work dir a command uses: the run id, and the host, pid and start time of the
    launcher that holds it, for the rest of the run. Another run's command that wants the same work dir
    while the holder lives ends with an error and touches nothing there, so two runs never mix their files.

    Liveness: on the same host, the holder's pid must still name the same process (its start time); a lock
    of another host (a shared file system) counts as live while its holder refreshes it, which it does every
    LOCK_REFRESH seconds for its running commands. A stale lock -- its launcher died, say with its host --
    is taken over. The run's own locks are released when its launcher ends.
    """

    def __init__(self):
        # workspace -> the work dirs locked below it, each relative to it and between NULs: a run of a
        # million commands keeps a few bytes per command here, not a string and a dict entry
        self.held = {}
        self.me = {"host": os.uname()[1], "pid": os.getpid(), "pid_start": process_start(os.getpid())}
        self.texts = {}  # run id -> the text of its lock record up to its time
        self.next_refresh = now() + LOCK_REFRESH

    def take(self, dir_fd, work_dir, request):
        run_id = locking_run(request)
        if run_id is None:  # a request outside a parallux run (a test, a tool): no lock
            return
        if run_id not in self.texts:  # (json.dumps of the whole record for every command cost more than this)
            self.texts = {run_id: json.dumps(dict(self.me, run_id=run_id))[:-1] + ', "time": '}
        data = (self.texts[run_id] + repr(now()) + "}").encode("utf-8")
        try:
            write_at(dir_fd, LOCK_NAME, data, 0o644)
        except FileExistsError:
            holder = read_record(LOCK_NAME, dir_fd)  # (a link there is no holder: it is replaced)
            if holder is not None and holder.get("run_id") != run_id and self.live(holder, dir_fd):
                raise WorkDirInUse(
                    "work dir %s is in use by run %s (host %s, pid %s); it was left untouched"
                    % (work_dir, holder.get("run_id"), holder.get("host"), holder.get("pid")))
            # stale, or ours (a retry): take it over
            replace_at(dir_fd, LOCK_NAME, data, LOCK_NAME + ".tmp%d" % os.getpid(), 0o644)
        workspace = workspace_of(work_dir, request)
        below = self.held.get(workspace)
        if below is None:
            below = self.held[workspace] = bytearray(b"\0")
        relative = work_dir[len(workspace) + 1:] if work_dir.startswith(workspace + "/") else work_dir
        below += relative.encode("utf-8", "surrogateescape") + b"\0"

    def live(self, holder, dir_fd):
        return lock_is_live(holder, dir_fd)

    def in_work_dir(self, work_dir, workspace, act):
        """act(dir_fd) in a work dir whose lock this launcher holds, opened again as at the start; nothing
        when it cannot be (gone, or a link now)."""
        try:
            dir_fd = open_below_workspace(os.path.normpath(work_dir), workspace, False)[0]
        except (OSError, UnsafeWorkDir):
            return
        try:
            act(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)

    def refresh(self, requests):
        """Touch the locks of these running commands' work dirs (the requests that took one)."""
        self.next_refresh = now() + LOCK_REFRESH
        for request in requests:
            if locking_run(request) is not None:
                work_dir = request["work_dir"]
                self.in_work_dir(work_dir, workspace_of(work_dir, request),
                                 lambda fd: os.utime(LOCK_NAME, dir_fd=fd, follow_symlinks=False))

    def release_all(self):
        for workspace, below in self.held.items():
            start = below.find(b"\0")  # (one at a time: a million would be a million objects at once)
            while start >= 0:
                end = below.find(b"\0", start + 1)
                relative = bytes(below[start + 1:end]).decode("utf-8", "surrogateescape") if end >= 0 else None
                if relative:
                    self.in_work_dir(os.path.join(workspace, relative), workspace, self.release)
                start = end
        self.held = {}

    def release(self, dir_fd):
        holder = read_record(LOCK_NAME, dir_fd)
        if holder is not None and all(holder.get(k) == v for k, v in self.me.items()):
            os.unlink(LOCK_NAME, dir_fd=dir_fd)


def locking_run(request):
    """The run a command's request locks its work dir for (None: a request outside a parallux run)."""
    return (request.get("record") or {}).get("run_id")


def workspace_of(work_dir, request):
    return request.get("workspace") or os.path.dirname(os.path.normpath(work_dir))


def lock_is_live(holder, dir_fd):
    """Whether the run that wrote the lock record ``holder`` (in the work dir open at ``dir_fd``) still holds
    it: on this host, its launcher's pid still names the same process; of another host (a shared file
    system), it is fresh. ``parallux clean`` asks the same, and leaves a work dir alone while it is."""
    if holder.get("host") == os.uname()[1]:
        return holder.get("pid_start") is not None and process_start(holder.get("pid")) == holder["pid_start"]
    try:
        return now() - os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False).st_mtime < LOCK_FRESH
    except OSError:
        return False


def drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


# -- frames: how requests and events (and the file data between them) are told apart -----------------------

def json_line(line):
    return json.loads(line.decode("utf-8"))


class Frames(object):
    """Splits a byte stream into messages: one JSON object per line and, after a line that says "bytes": N,
    the N raw bytes that follow it (a frame: file data travels as itself, not as base64 inside JSON).
    parallux's side of the protocol (_protocol.py) reads the launcher's events with this same class."""

    def __init__(self, loads=None):
        self.loads = loads or json_line  # parallux passes a faster parser than the standard library's
        self.line = bytearray()  # the start of a line whose end has not arrived yet
        self.header = None       # the line of a frame whose bytes are still arriving
        self.pieces = []         # those bytes so far: views of what arrived, not copies
        self.missing = 0         # how many are still to come

    def feed(self, data):
        """The messages that data completes, as (message, payload) pairs: payload None after a plain line,
        else bytes-like (a memoryview where that saves a copy); message a ValueError for a line that is
        not JSON."""
        if self.header is None and not self.line and b'"bytes"' not in data:
            return self.plain_lines(data)
        messages = []
        start, end = 0, len(data)
        while start < end or (self.header is not None and not self.missing):
            if self.header is not None:
                taken = min(self.missing, end - start)
                if taken:
                    self.pieces.append(memoryview(data)[start:start + taken])
                start += taken
                self.missing -= taken
                if not self.missing:
                    messages.append(self.payload_complete())
                continue
            newline = data.find(b"\n", start)
            if newline < 0:
                self.line += data[start:]
                break
            line = data[start:newline]
            if self.line:
                line, self.line = bytes(self.line) + line, bytearray()
            start = newline + 1
            if line.strip():
                self.line_complete(line, messages)
        return messages

    def plain_lines(self, data):
        """feed() of data that holds no frame and continues no line (nearly every read of events): its lines
        split at once."""
        lines = data.split(b"\n")
        tail = lines.pop()
        if tail:
            self.line += tail
        messages = []
        loads = self.loads
        for line in lines:
            if line and not line.isspace():
                try:
                    messages.append((loads(line), None))
                except ValueError as exc:
                    messages.append((exc, None))
        return messages

    def line_complete(self, line, messages):
        try:
            message = self.loads(line)
        except ValueError as exc:
            messages.append((exc, None))
            return
        size = message.get("bytes") if isinstance(message, dict) else None
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            self.header, self.missing = message, size
        else:
            messages.append((message, None))

    def payload_complete(self):
        pieces, self.pieces = self.pieces, []
        payload = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        header, self.header = self.header, None
        return header, payload


# -- files: put, get and walk over this same stream ---------------------------------------------------------
#
# So that files need nothing on the runner but this launcher (no SFTP subsystem, no scp), they travel as
# requests and events of the protocol, under an id parallux gives each transfer:
#
#   {"op": "walk", "id": 3, "root": "/w/bin", "recursive": true, "follow": true, "window": 4}
#       -> {"ev": "walk", "id": 3, "entries": [[relpath, kind, size, mtime_ns, mode, target], ...]}  (pages)
#          {"ev": "end", "id": 3}            the tree's manifest, for the quick check (see walk)
#   {"op": "get", "id": 4, "root": "/w/out", "files": [relpath, ...], "window": 8, "chunk": 524288}
#       -> {"ev": "data", "id": 4, "parts": [[index, length, last], ...], "bytes": N} + N bytes, ...
#          {"ev": "end", "id": 4}
#   {"op": "credit", "id": 4, "frames": 1}   one more page or data frame of a walk or get may be sent
#   {"op": "put", "id": 5, "root": "/w/bin", "dirs": [[relpath, mode, mtime_ns], ...],
#    "files": [[relpath, mode, mtime_ns], ...]}           creates the dirs; answered only if that fails
#   {"op": "data", "id": 5, "parts": [...], "bytes": N} + N bytes          -> {"ev": "ack", "id": 5}
#   {"op": "finish", "id": 5, "links": [[relpath, target, mtime_ns], ...],
#    "attrs": [[relpath, mode, mtime_ns], ...], "dirs": [...]}             -> {"ev": "end", "id": 5}
#   {"op": "abort", "id": 5}                 forget the transfer; its temporary files are removed
#
# A relpath "" is the root itself (a single file). A data frame's parts say whose bytes it carries: index
# into the transfer's files, length, and whether that file is complete with them (true), or not yet
# (false), or "again": it changed while it was read, what came of it is dropped and it comes again from its
# start (see TreeReader); small files go many to a frame, a big one over several. What a transfer makes
# this launcher send is bounded whatever the size of the tree: a walk or a get sends a page or frame only
# against credit, which parallux grants as it consumes them; parallux keeps only a few of a put's frames
# unacknowledged. A walk's "follow": false is a destination's (see walk). A transfer that fails ends with
# {"ev": "end", "id": N, "error": "No space left on device: /w/bin/x", "errno": 28}. The reader and writer
# below serve parallux too (_transfer.py): it reads what it puts and writes what it gets with them.

FILE_OPS = ("walk", "get", "credit", "put", "data", "finish", "abort")
CHUNK = 1 << 19      # bytes of file data in a frame, unless the request says otherwise
MAX_PARTS = 1000     # parts in one frame (a tree of many empty files)
WALK_PAGE = 1000     # entries in one page of a walk
NAME_KEPT = 200      # bytes of a file's name kept in its temporary name (a name has at most 255)
AGAIN = "again"      # a part's last: the file changed while it was read and comes again
RESENDS = 2          # times a file that changed while it was read is read again before that is an error
DIRS_KEPT = 64       # directories a TreeWriter keeps open (cached by relpath)
ROOT_FLAGS = DIR_FLAGS & ~os.O_NOFOLLOW  # a transfer's root (and a single file's parent): the user named it


class Files(object):
    """The transfers under way on this launcher: walks and gets (streams, sent as credit allows) and puts
    (writers, fed by data frames)."""

    def __init__(self, send):
        self.send = send
        self.streams = {}   # id -> [frames (a generator of (event, payload)), credit left]
        self.writers = {}   # id -> TreeWriter

    def handle(self, request, payload):
        transfer = request["id"]
        try:
            getattr(self, "do_" + request["op"])(transfer, request, payload)
        except (OSError, ValueError, LookupError, TypeError) as exc:  # (a malformed request, too)
            self.fail(transfer, exc)

    def do_walk(self, transfer, request, payload):
        follow = request.get("follow", True)
        if not follow and below(request["root"], request.get("workspace")):
            follow = None  # a destination in the workspace: a link as its root is a link, whatever it points to
        pages = walk_pages(fs(request["root"]), request.get("recursive", True), follow)
        self.start_stream(transfer, pages, request)

    def do_get(self, transfer, request, payload):
        frames = read_frames(fs(request["root"]), request["files"], int(request.get("chunk") or CHUNK))
        self.start_stream(transfer, frames, request)

    def start_stream(self, transfer, frames, request):
        self.streams[transfer] = [frames, 0]
        self.do_credit(transfer, {"frames": request.get("window") or 1}, None)

    def do_credit(self, transfer, request, payload):
        stream = self.streams.get(transfer)
        if stream is None:  # it ended (or failed) while this credit was on its way
            return
        stream[1] += int(request["frames"])
        while stream[1] > 0:
            try:
                event, data = next(stream[0])
            except StopIteration:
                del self.streams[transfer]
                self.send({"ev": "end", "id": transfer})
                return
            event["id"] = transfer
            self.send(event, data)
            stream[1] -= 1

    def do_put(self, transfer, request, payload):
        self.writers[transfer] = TreeWriter(fs(request["root"]), request["files"], request.get("workspace"))
        self.writers[transfer].make_dirs(request.get("dirs") or [])

    def do_data(self, transfer, request, payload):
        writer = self.writers.get(transfer)
        if writer is None:  # it failed: parallux learns that from its end event, not once per frame
            return
        writer.write(request["parts"], payload or b"")
        self.send({"ev": "ack", "id": transfer})

    def do_finish(self, transfer, request, payload):
        writer = self.writers.get(transfer)
        if writer is None:
            return
        writer.finish(request.get("links") or [], request.get("attrs") or [], request.get("dirs") or [])
        del self.writers[transfer]
        self.send({"ev": "end", "id": transfer})

    def do_abort(self, transfer, request, payload):
        self.drop(transfer)

    def drop(self, transfer):
        writer = self.writers.pop(transfer, None)
        if writer is not None:
            writer.abort()
        stream = self.streams.pop(transfer, None)
        if stream is not None:
            stream[0].close()  # (its open file, if any, is closed)

    def fail(self, transfer, exc):
        self.drop(transfer)
        self.send({"ev": "end", "id": transfer, "error": describe_os_error(exc),
                   "errno": getattr(exc, "errno", None)})

    def abandon(self):
        """The launcher is ending: what unfinished puts wrote under temporary names is removed."""
        for transfer in list(self.writers) + list(self.streams):
            self.drop(transfer)


def grow_pipes(*fds):
    """Grow the pipes the launcher talks through (Linux: 64 KiB by default) so that file data moves in
    fewer, larger reads and writes on both sides; left as they are where that is not possible."""
    for fd in fds:
        try:
            import fcntl  # (here: a Python without fcntl must still run the launcher)
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
        except (ImportError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size: keep the default
            pass


def fs(text):
    """A path from the wire (a str) as the bytes the system calls take: UTF-8 whatever this Python's locale,
    and the bytes of a name that is not UTF-8 passed through as they came (surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


def wire(path):
    """A path (bytes) as a str for the wire: the inverse of fs()."""
    return path.decode("utf-8", "surrogateescape")


def join(root, rel):
    return root if not rel else root.rstrip(b"/") + b"/" + rel


def os_error(exc, path):
    """exc, naming path as parallux would (a str, even for a name that is not UTF-8)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return OSError(exc.errno, exc.strerror, wire(path))
    return exc


def walk(root, recursive=True, follow=True):
    """A tree's entries, each [relpath, kind, size, mtime_ns, mode, target]: kind "f" (a file), "d" (a
    directory), "l" (a symlink; target is what it points to) or "o" (anything else); mode without the file
    type bits. The root comes first, as relpath "": followed if it is a symlink (``put("bin", ...)`` of a
    link to a directory copies the directory) -- a destination's (follow false) only to a directory, where
    the copy goes, for a link at a file's place is replaced as ``rsync -a`` does. Every symlink below the
    root is an entry of its own. A directory comes before what it holds. Raises OSError naming the path
    that could not be read."""
    try:
        info, link = root_info(root, follow)
    except OSError as exc:
        raise os_error(exc, root)
    yield entry(b"", info, link)
    if not recursive or not stat.S_ISDIR(info.st_mode):
        return
    pending = [b""]
    while pending:
        rel = pending.pop()
        where = join(root, rel)
        try:
            with os.scandir(where) as items:
                for item in items:
                    child = join(rel, item.name) if rel else item.name
                    info = item.stat(follow_symlinks=False)
                    link = os.readlink(item.path) if stat.S_ISLNK(info.st_mode) else None
                    yield entry(child, info, link)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(child)
        except OSError as exc:
            raise os_error(exc, exc.filename if isinstance(exc.filename, bytes) else where)


def root_info(root, follow):
    """The stat of a walk's root and, if it is an entry of its own, its link's target."""
    if follow:
        return os.stat(root), None
    info = os.lstat(root)
    if not stat.S_ISLNK(info.st_mode):
        return info, None
    try:
        target = os.stat(root)
    except OSError:  # dangling
        target = None
    if target is not None and stat.S_ISDIR(target.st_mode) and follow is not None:
        return target, None
    return info, os.readlink(root)


def below(path, workspace):
    """Whether path (str) is below the workspace (str or None), where no link is followed."""
    if not workspace:
        return False
    top = os.path.normpath(workspace).rstrip("/") + "/"
    return os.path.normpath(path).startswith(top)


def entry(rel, info, link):
    mode = info.st_mode
    kind = "f" if stat.S_ISREG(mode) else "d" if stat.S_ISDIR(mode) else "l" if link is not None else "o"
    return [wire(rel), kind, info.st_size if kind == "f" else 0, info.st_mtime_ns, stat.S_IMODE(mode),
            wire(link) if link is not None else None]


def walk_pages(root, recursive, follow):
    page = []
    for item in walk(root, recursive, follow):
        page.append(item)
        if len(page) == WALK_PAGE:
            yield {"ev": "walk", "entries": page}, None
            page = []
    if page:
        yield {"ev": "walk", "entries": page}, None


def read_frames(root, files, chunk):
    reader = TreeReader(root, files, chunk)
    try:
        while True:
            frame = reader.next_frame()
            if frame is None:
                return
            yield {"ev": "data", "parts": frame[0]}, frame[1]
    finally:
        reader.close()


class TreeReader(object):
    """Reads files of a tree, in order, as the payloads of data frames of at most chunk bytes; never more
    than one frame in memory. A file is read up to the size it had when it was opened. One that changed
    meanwhile -- it ended early, or its size, mtime or ctime differ once it was read -- would make a copy
    that matches neither its old nor its new state: it is read again from its start, after a part
    [index, 0, AGAIN] that has the writer drop what came of it; RESENDS times, then it is an error. (Both
    looks are fstat's of the descriptor read: a file that its path no longer names, replaced by a rename,
    was read whole as it was; and a path's stat may disagree with its descriptor's on some file systems.)"""

    def __init__(self, root, files, chunk):
        self.root = root
        self.files = files  # relpaths under root
        self.chunk = chunk
        self.index = 0
        self.fd = None
        self.left = 0       # bytes still to read of the open file: its size when it was opened
        self.opened = None  # (size, mtime_ns, ctime_ns) of the open file when it was opened
        self.tries = 0      # times the file at index was found changed

    def next_frame(self):
        """(parts, payload), or None once every file was read."""
        parts, pieces, room = [], [], self.chunk
        while self.index < len(self.files) and room > 0 and len(parts) < MAX_PARTS:
            try:
                if self.fd is None:
                    self.open_next()
                data = os.read(self.fd, min(room, self.left)) if self.left else b""
                self.left -= len(data)
                last = not data or not self.left
                if last and self.changed():
                    parts.append([self.index, 0, AGAIN])
                    self.again()
                    continue
            except OSError as exc:
                self.close()
                raise os_error(exc, self.path())
            parts.append([self.index, len(data), last])
            pieces.append(data)
            room -= len(data)
            if last:
                self.close()
                self.index += 1
                self.tries = 0
        return (parts, b"".join(pieces)) if parts else None

    def path(self):
        return join(self.root, fs(self.files[self.index]))

    def open_next(self):
        # O_NONBLOCK, and a regular file only: a FIFO put where a file was (after the walk, or as a result's
        # stdout.txt) would block the launcher's one loop in open() or read() for ever
        self.fd = os.open(self.path(), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        info = os.fstat(self.fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "Not a regular file")
        self.opened = identity(info)
        self.left = self.opened[0]

    def changed(self):
        """Whether the file read to its end changed since it was opened (ctime too: a tool that restores
        the mtime of what it rewrote cannot restore that)."""
        return self.left > 0 or identity(os.fstat(self.fd)) != self.opened

    def again(self):
        self.close()
        self.tries += 1
        if self.tries > RESENDS:
            raise OSError(errno.EAGAIN, "Changed while it was read, %d times" % self.tries)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def identity(info):
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns


class TreeWriter(object):
    """Writes the files of a tree from data frames. Each file is written under a temporary name in its own
    directory (``.NAME.XXXXXXXX.parallux``) and renamed when it is complete, with its mode and mtime: no
    partial file ever has the final name. abort() removes the temporary files of what was not complete.

    Nothing below the root is followed (as ``rsync -a``; the ``openat`` idiom of ``shutil.rmtree``): each
    directory is opened from its parent's descriptor with O_NOFOLLOW, every name is made, renamed or changed
    relative to its directory's descriptor, and a symlink where a directory is to be is replaced by one, as
    one where a file is to be is replaced by the file's rename. The root is followed: the user named it --
    unless it is below the runner's workspace (a relative destination), where, as for a work dir, no link is
    followed on the way from the workspace to the root, nor as the root itself (a co-user's link there would
    send the files where they chose): a link there is refused, named."""

    def __init__(self, root, files, workspace=None):
        self.root = root
        self.files = files  # [[relpath, mode, mtime_ns], ...], which the frames' parts index
        self.open = {}      # index -> [fd (None once closed), its directory's fd, temporary name, name]
        self.dirs = {}      # relpath of a directory (None: the root's parent) -> its fd
        self.workspace = os.path.normpath(workspace) if below(wire(root), workspace) else None

    def open_parent(self, create):
        """The root's parent, opened: reached from the workspace without following a link when the root is
        below it, else by its path (made when missing and ``create``)."""
        parent = os.path.dirname(os.path.normpath(wire(self.root)))
        if self.workspace is None:
            if create and parent:
                os.makedirs(parent, exist_ok=True)
            return os.open(fs(parent) or b".", ROOT_FLAGS)
        try:
            if parent == self.workspace:
                return open_workspace(parent, create)
            return open_below_workspace(parent, self.workspace, create)[0]
        except UnsafeWorkDir as exc:
            raise OSError(errno.ELOOP, str(exc))

    def path_of(self, rel):
        name = fs(rel)
        if name and (name.startswith(b"/") or any(p in (b"", b".", b"..") for p in name.split(b"/"))):
            raise ValueError("not a path inside the tree: %r" % (rel,))
        return join(self.root, name)

    def place(self, rel):
        """(fd of its directory, name) of an entry below the root, or of a single file's root (the root's
        parent's fd) -- its directory reached without following a link below the root."""
        self.path_of(rel)  # (checked)
        if len(self.dirs) >= DIRS_KEPT:
            self.close_dirs()
        if not rel:
            return self.dir_fd(None), os.path.basename(self.root)
        head, _, name = fs(rel).rpartition(b"/")
        return self.dir_fd(head), name

    def dir_fd(self, rel):
        fd = self.dirs.get(rel)
        if fd is None:
            if rel is None:
                fd = self.open_parent(False)
            elif rel == b"" and self.workspace is None:
                fd = os.open(self.root, ROOT_FLAGS)
            elif rel == b"":
                fd = self.open_root()
            else:
                head, _, name = rel.rpartition(b"/")
                fd = os.open(name, DIR_FLAGS, dir_fd=self.dir_fd(head))
            self.dirs[rel] = fd
        return fd

    def open_root(self):
        name = os.path.basename(self.root.rstrip(b"/"))
        try:
            return os.open(name, DIR_FLAGS, dir_fd=self.dir_fd(None))
        except OSError as exc:
            raise refusal(self.dir_fd(None), name, wire(self.root), exc)

    def close_dirs(self):
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs = {}

    def make_dirs(self, dirs):
        """The root's parents, then these directories ([relpath, mode, mtime_ns], parents first), created
        where missing with room for the owner to write; their own modes are set by finish()."""
        parent = os.path.dirname(self.root.rstrip(b"/"))
        try:
            self.dirs[None] = self.open_parent(True)
        except OSError as exc:
            raise os_error(exc, parent)
        for rel, mode, _ in dirs:
            path = self.path_of(rel)
            try:
                if rel:
                    self.make_dir(rel, mode)
                else:
                    self.make_root(mode)
            except OSError as exc:
                raise os_error(exc, path)

    def make_root(self, mode):
        if self.workspace is not None:  # (below the workspace: as any directory below the root)
            self.make_dir("", mode)
            return
        try:
            os.mkdir(self.root, mode | 0o700)
        except FileExistsError:
            if not os.path.isdir(self.root):
                raise OSError(errno.ENOTDIR, "Not a directory (a file is in the way)")
            if not os.access(self.root, os.W_OK | os.X_OK):  # copied read-only last time: writable until finish()
                set_attributes(self.root, stat.S_IMODE(os.stat(self.root).st_mode) | 0o700, None)

    def make_dir(self, rel, mode):
        parent, name = self.place(rel)
        try:
            os.mkdir(name, mode | 0o700, dir_fd=parent)
            return
        except FileExistsError:
            pass
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):  # never written through: replaced, as rsync -a does
            os.unlink(name, dir_fd=parent)
            os.mkdir(name, mode | 0o700, dir_fd=parent)
        elif not stat.S_ISDIR(info.st_mode):
            raise OSError(errno.ENOTDIR, "Not a directory (a file is in the way)")
        elif not os.access(name, os.W_OK | os.X_OK, dir_fd=parent):  # copied read-only last time
            set_attributes_at(parent, name, stat.S_IMODE(info.st_mode) | 0o700, None)

    def write(self, parts, payload):
        view = memoryview(payload)
        offset = 0
        for index, length, last in parts:
            path = self.path_of(self.files[index][0])
            try:
                if last == AGAIN:
                    self.restart(index)
                    continue
                if index not in self.open:
                    self.create(index)
                fd = self.open[index][0]
                piece = view[offset:offset + length]
                while piece:
                    piece = piece[os.write(fd, piece):]
                if last:
                    self.complete(index)
            except OSError as exc:
                raise os_error(exc, path)
            offset += length

    def create(self, index):
        parent, name = self.place(self.files[index][0])
        parent = os.dup(parent)  # (the cache may close its own while the file is written)
        temp = temporary_name(name)
        try:
            fd = os.open(temp, CREATE_FLAGS, 0o600, dir_fd=parent)
        except OSError:
            os.close(parent)
            raise
        self.open[index] = [fd, parent, temp, name]

    def restart(self, index):
        """The file changed while it was read: what was written of it goes, it comes again."""
        if index in self.open:
            fd = self.open[index][0]
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)

    def complete(self, index):
        _, mode, mtime = self.files[index]
        state = self.open[index]
        fd, parent, temp, name = state
        state[0] = None
        try:
            os.fchmod(fd, mode)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)  # (over a link: the link is replaced)
        os.close(parent)
        del self.open[index]

    def finish(self, links, attrs, dirs):
        """Symlinks (made aside and renamed over what is there), the modes of files that were the same but
        for their mode, then the directories' modes and mtimes, deepest first: writing into a directory
        changes its mtime, so its own comes last."""
        for rel, target, mtime in links:
            try:
                self.make_link(rel, target, mtime)
            except OSError as exc:
                raise os_error(exc, self.path_of(rel))
        for rel, mode, _ in attrs:  # (a single file's root too: by its parent's descriptor, not followed)
            self.set_attributes_of(rel, mode, None)
        for rel, mode, mtime in sorted(dirs, reverse=True):
            if rel or self.workspace is not None:
                self.set_attributes_of(rel, mode, mtime)
            else:
                set_attributes(self.root, mode, mtime)  # (the root: followed)
        self.close_dirs()

    def set_attributes_of(self, rel, mode, mtime):
        try:
            parent, name = self.place(rel)
            set_attributes_at(parent, name, mode, mtime)
        except OSError as exc:
            raise os_error(exc, self.path_of(rel))

    def make_link(self, rel, target, mtime):
        parent, name = self.place(rel)
        temp = temporary_name(name)
        os.symlink(fs(target), temp, dir_fd=parent)
        try:
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError:
            os.unlink(temp, dir_fd=parent)
            raise
        try:
            os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)
        except (NotImplementedError, OSError):  # (a system without lutimes: the link's time is kept)
            pass

    def abort(self):
        for fd, parent, temp, _ in self.open.values():
            try:
                if fd is not None:
                    os.close(fd)
                os.unlink(temp, dir_fd=parent)
            except OSError:
                pass
            finally:
                os.close(parent)
        self.open = {}
        self.close_dirs()


def temporary_name(name):
    return b"." + name[:NAME_KEPT] + b"." + os.urandom(4).hex().encode() + b".parallux"


def set_attributes(path, mode, mtime):
    try:
        os.chmod(path, mode)
        if mtime is not None:
            os.utime(path, ns=(mtime, mtime))
    except OSError as exc:
        raise os_error(exc, path)


def set_attributes_at(parent, name, mode, mtime):
    """Mode (and mtime) of name in the directory parent, never through a link: by a descriptor opened with
    O_NOFOLLOW, or, where its owner may not open it (not readable), by name once lstat shows no link."""
    try:
        fd = os.open(name, READ_FLAGS | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=parent)
    except PermissionError:
        if stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise OSError(errno.ELOOP, "A symbolic link (not followed)")
        os.chmod(name, mode, dir_fd=parent)
        if mtime is not None:
            os.utime(name, ns=(mtime, mtime), dir_fd=parent)
        return
    try:
        os.fchmod(fd, mode)
        if mtime is not None:
            os.utime(fd, ns=(mtime, mtime))
    finally:
        os.close(fd)


# -- facts about this machine -----------------------------------------------------------------------------

class MachineFacts(object):
    """Every read of the machine's facts (``/sys``, ``/proc``, ``/etc``) goes through here, below ``root``.

    ``root`` is ``/`` unless PARALLUX_MACHINE_ROOT (parallux passes a runner's ``env=`` value, or its own, in
    the hello request; else the launcher's environment) names a tree laid out like ``/``: a test's fake machine,
    with SMT siblings, another boot id, governors this machine lacks. A file the tree lacks is unknown (None),
    never an error. What the kernel does (affinity, processes) is not a fact read here: it stays real.
    """

    def __init__(self, root=None):
        self.root = root or os.environ.get(MACHINE_ROOT_VAR) or "/"

    def path(self, relpath):
        return os.path.join(self.root, relpath.lstrip("/"))

    def read(self, relpath, limit=1 << 16):
        """The file's text, stripped; None when it cannot be read."""
        try:
            with open(self.path(relpath), "rb") as f:
                return f.read(limit).decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return None

    def swap_configured(self):
        """Swap configured: /proc/swaps holds a device below its header line."""
        swaps = self.read("proc/swaps")
        return swaps is not None and len(swaps.splitlines()) > 1

    def cpu_list(self, relpath):
        """A kernel CPU list file (``0-3,8``) as a list of ints; None when unreadable or malformed."""
        text = self.read(relpath)
        return None if text is None else parse_cpu_list(text)

    def identity(self):
        """The boot id (one per running kernel: what shares CPUs) and the machine id (one per installation)."""
        return {"boot_id": self.read("proc/sys/kernel/random/boot_id"),
                "machine_id": self.read("etc/machine-id") or self.read("var/lib/dbus/machine-id")}

    def online(self):
        return self.cpu_list("sys/devices/system/cpu/online")

    def numa_cpus(self):
        """Each NUMA node's CPUs, {"0": [0, 1], ...} (what a GPU's node means for the cores near it)."""
        nodes = {}
        try:
            names = os.listdir(self.path("sys/devices/system/node"))
        except OSError:
            return nodes
        for name in names:
            if re.match(r"node\d+$", name):
                cpus = self.cpu_list("sys/devices/system/node/%s/cpulist" % name)
                if cpus:
                    nodes[name[4:]] = cpus
        return nodes

    def pci_numa_node(self, bus_id):
        """The NUMA node of a PCI device as nvidia-smi names it (``00000000:3B:00.0``); None when unknown."""
        domain, _, rest = bus_id.strip().lower().rpartition(":")  # (sysfs: a 4-digit domain, lower case)
        head, _, bus = domain.rpartition(":") if ":" in domain else ("", "", domain)
        text = self.read("sys/bus/pci/devices/%s:%s:%s/numa_node" % ((head or "0")[-4:].rjust(4, "0"), bus, rest))
        try:
            node = int(text) if text is not None else -1
        except ValueError:
            return None
        return node if node >= 0 else None

    def siblings(self, cpus):
        """The physical cores holding these CPUs, each as the sorted list of its logical CPUs (SMT threads);
        a CPU whose topology is unknown is a core of its own."""
        cores = set()
        for cpu in cpus:
            threads = self.cpu_list("sys/devices/system/cpu/cpu%d/topology/thread_siblings_list" % cpu)
            cores.add(tuple(sorted(set(threads or []) | {cpu})))
        return [list(core) for core in sorted(cores)]

    # -- the environment a run records (SPEC 17) --------------------------------------------------------------

    def environment(self, cpus=None):
        """What the run log records of this machine: its system, CPUs, memory, frequency scaling, isolated
        CPUs and load. The frequency fields describe ``cpus`` (the machine's core pools), else every online
        CPU. What cannot be read is None; the kernel and the architecture, which are the running kernel's
        and not files, come from uname where the tree does not say."""
        online = self.online()
        measured = sorted(set(cpus)) if cpus else (online or [])
        system = os.uname()
        info = self.cpuinfo()
        environment = {
            "hostname": self.read("proc/sys/kernel/hostname") or system[1],
            "os": self.os_release(), "kernel": "%s %s" % (self.read("proc/sys/kernel/osrelease") or system[2],
                                                          self.read("proc/sys/kernel/version") or system[3]),
            "arch": self.read("proc/sys/kernel/arch") or system[4],
            "cpu_model": first(info[key] for key in ("model name", "cpu model", "cpu", "uarch") if info.get(key)),
            "microcode": info.get("microcode"), "logical_cpus": len(online) if online else None,
            "numa_nodes": len(self.cpu_list("sys/devices/system/node/online") or []) or None,
            "memory_bytes": self.memory_bytes(), "load": self.load(), "cpus": measured,
            "isolated": self.isolated("isolated", "isolcpus"), "nohz_full": self.isolated("nohz_full", "nohz_full"),
            "python": "%d.%d.%d" % sys.version_info[:3],
        }
        environment.update(self.topology(online or []))
        environment.update(self.frequency(measured))
        return environment

    def cpuinfo(self):
        """The first processor's lines of /proc/cpuinfo, keys lowercased: ``model name``, ``microcode``."""
        info = {}
        for line in (self.read("proc/cpuinfo") or "").split("\n\n")[0].splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() not in info:
                info[key.strip().lower()] = value.strip()
        return info

    def os_release(self):
        """PRETTY_NAME of os-release (``Debian GNU/Linux 12 (bookworm)``)."""
        for relpath in ("etc/os-release", "usr/lib/os-release"):
            for line in (self.read(relpath) or "").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "PRETTY_NAME":
                    return value.strip().strip("\"'") or None
        return None

    def memory_bytes(self):
        for line in (self.read("proc/meminfo") or "").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "MemTotal:" and parts[1].isdigit():
                return int(parts[1]) * (1024 if parts[2:3] == ["kB"] else 1)
        return None

    def load(self):
        """The load averages over 1, 5 and 15 minutes."""
        try:
            return [float(value) for value in (self.read("proc/loadavg") or "").split()[:3]] or None
        except ValueError:
            return None

    def topology(self, online):
        """Sockets, cores per socket and threads per core, from each online CPU's topology."""
        packages = [self.read("sys/devices/system/cpu/cpu%d/topology/physical_package_id" % cpu) for cpu in online]
        threads = [self.cpu_list("sys/devices/system/cpu/cpu%d/topology/thread_siblings_list" % cpu)
                   for cpu in online]
        sockets = len(set(packages)) if online and None not in packages else None
        cores = set(tuple(group) for group in threads if group) if online and None not in threads else None
        return {"sockets": sockets,
                "cores_per_socket": len(cores) // sockets if cores and sockets else None,
                "threads_per_core": max(len(core) for core in cores) if cores else None}

    def frequency(self, cpus):
        """The frequency driver, the governors (governor -> CPUs), the lowest scaling_min_freq and the
        highest scaling_max_freq of these CPUs (kHz), and whether turbo (boost) is on."""
        governors, lows, highs, driver = {}, [], [], None
        for cpu in cpus:
            base = "sys/devices/system/cpu/cpu%d/cpufreq/" % cpu
            governor = self.read(base + "scaling_governor")
            if governor:
                governors.setdefault(governor, []).append(cpu)
            driver = driver or self.read(base + "scaling_driver")
            lows.append(as_int(self.read(base + "scaling_min_freq")))
            highs.append(as_int(self.read(base + "scaling_max_freq")))
        lows, highs = [v for v in lows if v is not None], [v for v in highs if v is not None]
        return {"cpufreq_driver": driver, "governors": governors or None, "min_khz": min(lows) if lows else None,
                "max_khz": max(highs) if highs else None, "turbo": self.turbo()}

    def turbo(self):
        """intel_pstate's no_turbo (0: turbo on), else cpufreq's boost (1: on); None where neither is."""
        no_turbo = self.read("sys/devices/system/cpu/intel_pstate/no_turbo")
        if no_turbo in ("0", "1"):
            return "on" if no_turbo == "0" else "off"
        boost = self.read("sys/devices/system/cpu/cpufreq/boost")
        if boost in ("0", "1"):
            return "on" if boost == "1" else "off"
        return None

    def isolated(self, name, option):
        """The CPUs the kernel isolates (``isolated``: isolcpus=) or runs tickless (``nohz_full``), from its
        file in /sys, else from the kernel's command line (its flags, ``domain,managed_irq,``, left out);
        [] for none, None where neither can be read."""
        text = self.read("sys/devices/system/cpu/" + name)
        if text is not None:
            return parse_cpu_list(text)
        cmdline = self.read("proc/cmdline")
        if cmdline is None:
            return None
        for word in cmdline.split():
            if word.startswith(option + "="):
                return parse_cpu_list(",".join(part for part in word[len(option) + 1:].split(",")
                                               if part[:1].isdigit()))
        return []


def as_int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def parse_cpu_list(text):
    """``0-3,8`` -> [0, 1, 2, 3, 8]; None for what is not such a list."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            return None
        if low < 0 or high < low:
            return None
        cpus.extend(range(low, high + 1))
    return cpus


def hello(facts):
    try:
        cpus = sorted(os.sched_getaffinity(0))  # the CPUs commands may run on: what a core pool may name
    except (AttributeError, OSError):
        cpus = None
    online = facts.online()
    logical = len(online) if online else os.cpu_count()
    event = {
        "ev": "hello", "protocol": PROTOCOL_VERSION, "pid": os.getpid(),
        "python": "%d.%d.%d" % sys.version_info[:3], "logical_cores": logical,
        "usable_cores": len(cpus) if cpus else logical, "cpus": cpus,
        "home": os.path.expanduser("~"), "cwd": os.getcwd(),
        "numactl": find_program("numactl"), "hostname": os.uname()[1], "guardian": os.getppid(),
        "step_gpus": step_gpus(os.environ),
    }
    event.update(machine_of(facts, cpus))
    return event


def step_gpus(environ):
    """The GPUs of the Slurm step (or batch script) this launcher runs in, as a command's
    CUDA_VISIBLE_DEVICES must name them; None outside a step given GPUs.

    Slurm names a step's GPUs twice: SLURM_STEP_GPUS (a batch script's: SLURM_JOB_GPUS) by their index on
    the node, and CUDA_VISIBLE_DEVICES as CUDA in the step counts them. Without device cgroups the two agree;
    with them (ConstrainDevices) the step sees only its own GPUs, which CUDA counts from 0, so node GPUs
    "2,3" are "0,1" to a command: the CUDA numbers are the ones to hand on, when they are indices and as
    many as Slurm's. A CUDA_VISIBLE_DEVICES without Slurm's GPUs beside it is a user's, and says nothing."""
    slurm = indices(environ.get("SLURM_STEP_GPUS") or environ.get("SLURM_JOB_GPUS"))
    if not slurm:
        return None
    cuda = indices(environ.get("CUDA_VISIBLE_DEVICES"))
    return cuda if cuda is not None and len(cuda) == len(slurm) else slurm


def indices(text):
    """``0,1,3`` -> [0, 1, 3]; None for anything else (UUIDs, "(null)", nothing)."""
    parts = (text or "").split(",")
    if not all(part.strip().isdigit() for part in parts):
        return None
    return [int(part) for part in parts]


def machine_of(facts, cpus):
    """Which machine this is (the runners on one share its CPUs and GPUs), its physical cores (SMT siblings),
    its NUMA nodes' CPUs and its memory (what commands may reserve is a share of it)."""
    return {"machine": facts.identity(), "siblings": facts.siblings(facts.online() or cpus or []),
            "numa_cpus": facts.numa_cpus(), "memory_total": facts.memory_bytes()}


def gpu_facts(facts, given, path, step=None):
    """The GPUs this launcher's commands may lease, each with its NUMA node: ``given`` (the runner's gpus=),
    else ``step``'s, the GPUs of the Slurm step it runs in (``step_gpus``: only those are the step's to use,
    whatever else the node has), else those nvidia-smi lists. NUMA nodes come from nvidia-smi's list, by
    index: a step's indices are the node's where no device cgroup renumbers them (with one, unverified)."""
    if given is not None and not given:
        return {"gpus": []}
    found, error = query_gpus(path)
    nodes = dict((index, facts.pci_numa_node(bus_id)) for index, bus_id in found)
    indices = [int(index) for index in given] if given is not None else step if step is not None else sorted(nodes)
    event = {"gpus": [{"index": index, "numa_node": nodes.get(index)} for index in indices]}
    if error is not None and given is None and step is None:
        event["gpu_error"] = error
    return event


def query_gpus(path):
    """(index, PCI bus id) of each GPU nvidia-smi (on ``path``, else our PATH) lists, and why it could not say
    (None: it said, or there is no nvidia-smi: no GPUs)."""
    program = shutil.which("nvidia-smi", path=path)
    if program is None:
        return [], None
    try:
        done = subprocess.run((program,) + GPU_QUERY, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=GPU_QUERY_TIMEOUT)
    except subprocess.TimeoutExpired:
        return [], "%s did not answer within %g s" % (program, GPU_QUERY_TIMEOUT)
    except OSError as exc:
        return [], "%s: %s" % (program, describe_os_error(exc))
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
        return [], "%s exited %d%s" % (program, done.returncode, ": " + said[-1] if said else "")
    gpus = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        index, _, bus_id = line.partition(",")
        if index.strip().isdigit():
            gpus.append((int(index.strip()), bus_id.strip()))
    return gpus, None


def own_affinity():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def set_affinity(cpus):
    """Move this process to these CPUs; False where that cannot be done (not Linux, a CPU it may not use)."""
    try:
        os.sched_setaffinity(0, cpus)
        return True
    except (AttributeError, OSError, ValueError):
        return False


def find_program(name):
    return shutil.which(name)


def prctl(option, value):
    """Linux's prctl(2); False where it is not available (not Linux, or a Python without ctypes)."""
    try:
        import ctypes  # here, not at the top: a Python built without ctypes must still run the launcher
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except Exception:
        return False


def become_subreaper():
    """Adopt orphaned descendants (Linux), so that we reap them and hear when the last of a killed tree dies.

    Otherwise they go to init: no SIGCHLD tells us a killed tree is gone (its exit event would wait out the whole
    grace), and an init that reaps late or never (as in some containers) leaves zombies that keep the group
    "alive" meanwhile. And an orphan that left its group, session and environment is still ours to find at
    the end: below us.
    """
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # not Linux: orphans go to init, and kills end at the grace as before


# -- reattaching: a launcher that outlives a dropped connection -------------------------------------------
#
# An SSH runner's hello may ask for it: {"op": "hello", ..., "reconnect": 300, "token": "<secret hex>"}. The
# launcher then listens on a Unix socket in a new directory of its own (mode 0700, this user's, under $TMPDIR
# or /tmp: Attachment.open) and says where in its hello: "attach": {"path": ..., "pid": ...}. When its
# channel drops (EOF, a broken output, the watchdog), it does not stop: it goes on detached -- its commands
# run, their records are written, their events kept -- for the grace ("reconnect" seconds), then stops
# everything as it would have at once. A new SSH channel runs this file in attach mode (bridge(): its last
# argument ATTACH_ARG), which reads one line from parallux, connects to the socket, and hands the launcher
# its stdin, stdout and stderr (SCM_RIGHTS) with that line:
#
#   parallux -> bridge    {"op": "attach", "path": ..., "pid": ..., "token": "...", "seq": 41}
#   bridge -> launcher    the same line, and the bridge's descriptors 0, 1 and 2
#   launcher -> bridge    ok  (or "refused: why"; "bye" when the launcher ends)
#   launcher -> parallux  {"ev": "attached", "got": 17, "seq": 44, "pid": ...}, then events 42 to 44 again
#
# From then on the launcher speaks over the new channel as it did over the first (a half-open first one is
# superseded), and the bridge only waits, to end with it. Only this user can reach the socket (its
# directory's mode); a connection from another uid is closed unheard (SO_PEERCRED), and one that does not
# give the token within ATTACH_WAIT is closed as well. The bridge checks the directory (owner, mode) and
# that the socket's listener is the launcher parallux names (uid and pid), so the token goes nowhere else.
#
# Nothing may be lost or doubled across a drop. The events parallux must see (exits, errors, records) carry
# "seq" and are kept in a Journal until parallux acknowledges them ("ack": its last seq, in its numbered
# requests and pings); the attach names the last one it processed, and the launcher sends the rest again,
# in order. The requests that must arrive (RELIABLE_OPS) carry "n"; the launcher says in those events and
# its pongs the last it got ("got"), and parallux sends the later ones again after an attach. Transfers are
# not resumed: those of a lost channel are abandoned on both sides (parallux tries them again).

ATTACH_ARG = "--attach"
ATTACH_NAME = "launcher.sock"
ATTACH_WAIT = 10.0        # seconds a connection to the attach socket gets to say who it is
ATTACH_LINE = 8192        # bytes an attach request may take
ATTACH_FDS = 3            # descriptors an attach hands over: stdin, stdout, stderr
JOURNAL_MEMORY = 4 << 20  # bytes of unacknowledged events kept in memory; more go to a file


class Attachment(object):
    """The launcher's attach point: its listening socket and private directory, the connections that have
    not said who they are yet, the bridge of the channel in use, and the journal of events to replay."""

    def __init__(self, token, grace, directory, listener):
        self.token = token.encode("utf-8")
        self.grace = grace
        self.directory = directory
        self.path = os.path.join(directory, ATTACH_NAME)
        self.listener = listener
        self.journal = Journal(directory)
        self.pending = {}          # socket -> [deadline, the bytes so far, the descriptors so far]
        self.bridge = None         # the socket of the bridge whose channel is in use
        self.detached_at = None    # when the channel dropped, while none replaced it

    @classmethod
    def open(cls, token, grace):
        """(an attachment, None), or (None, why there can be none)."""
        import socket
        try:
            directory = make_private_dir()
        except OSError as exc:
            return None, "cannot make a private directory for the attach socket: %s" % describe_os_error(exc)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = os.path.join(directory, ATTACH_NAME)
        try:
            listener.bind(path)
            os.chmod(path, 0o600)
            listener.listen(8)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            remove_attach_dir(directory)
            return None, "cannot listen on %s: %s" % (path, describe_os_error(exc))
        return cls(token, grace, directory, listener), None

    def deadlines(self):
        found = [entry[0] for entry in self.pending.values()]
        if self.detached_at is not None:
            found.append(self.detached_at + self.grace)
        return found

    def detached(self, when):
        self.detached_at = when
        self.close_bridge(b"")  # (its channel is gone: its bridge may end)

    def attached(self, conn):
        self.detached_at = None
        self.close_bridge(b"")
        self.bridge = conn
        try:
            conn.sendall(b"ok\n")
        except OSError:
            pass

    def accept(self, selector):
        """A connection to the socket: kept while it says who it is, if it comes from this user at all."""
        try:
            conn = self.listener.accept()[0]
        except OSError:
            return
        if peer_credentials(conn)[1] != os.geteuid():  # another user's process (root's, say): not ours
            conn.close()
            return
        conn.setblocking(False)
        self.pending[conn] = [now() + ATTACH_WAIT, b"", []]
        selector.register(conn, selectors.EVENT_READ, ("attach", conn))

    def receive(self, conn, selector):
        """What a pending connection sent: (its attach request, its descriptors) once complete and valid;
        None while it is not, or when it is refused (then closed)."""
        import socket
        entry = self.pending[conn]
        try:
            data, ancillary, _, _ = conn.recvmsg(ATTACH_LINE, socket.CMSG_SPACE(4 * 2 * ATTACH_FDS))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            data, ancillary = b"", []
        entry[2] += received_fds(ancillary)
        entry[1] += data
        if data and b"\n" not in entry[1] and len(entry[1]) < ATTACH_LINE:
            return None
        self.forget(conn, selector)
        line, fds = entry[1].split(b"\n", 1)[0], entry[2]
        why = self.refusal(line, fds)
        if why is not None:
            for fd in fds:
                os.close(fd)
            refuse(conn, why)
            return None
        return json.loads(line.decode("utf-8")), fds

    def refusal(self, line, fds):
        """Why an attach request is refused, or None."""
        import hmac
        try:
            request = json.loads(line.decode("utf-8"))
            token = str(request["token"]).encode("utf-8")
        except (ValueError, KeyError, TypeError):
            return "not an attach request"
        if not hmac.compare_digest(token, self.token):
            return "wrong token"
        if len(fds) != ATTACH_FDS:
            return "%d descriptors handed over, not %d" % (len(fds), ATTACH_FDS)
        return None

    def forget(self, conn, selector):
        del self.pending[conn]
        selector.unregister(conn)

    def expire(self, selector):
        """Close the connections that did not say who they are in time."""
        for conn, entry in list(self.pending.items()):
            if now() >= entry[0]:
                self.forget(conn, selector)
                for fd in entry[2]:
                    os.close(fd)
                refuse(conn, "nothing said within %g s" % ATTACH_WAIT)

    def close_bridge(self, last_words):
        if self.bridge is not None:
            bridge, self.bridge = self.bridge, None
            try:
                bridge.setblocking(True)
                bridge.settimeout(1.0)
                bridge.sendall(last_words)
            except OSError:
                pass
            bridge.close()

    def close(self):
        """The launcher ends: the bridge hears so, and nothing of the attach point is left."""
        self.close_bridge(b"bye\n")
        for conn, entry in list(self.pending.items()):
            conn.close()
            for fd in entry[2]:
                os.close(fd)
        self.pending = {}
        self.listener.close()
        self.journal.close()
        remove_attach_dir(self.directory)


class Journal(object):
    """The events parallux must not miss, numbered ("seq") and kept, oldest first, until it acknowledges
    them. Their number is bounded by the commands that end meanwhile (while detached, no new command
    starts), but a command's exit event can carry 4 KiB of stderr: beyond JOURNAL_MEMORY bytes in memory,
    they are moved to a file in the attach directory, unlinked at once, read back for a replay."""

    def __init__(self, directory):
        self.directory = directory
        self.seq = 0            # the number of the last event kept
        self.kept = []          # [seq, data] in memory, after the spilled ones
        self.start = 0          # the index in kept of the first not acknowledged
        self.kept_bytes = 0
        self.spilled = []       # (seq, offset, length) in the file
        self.fd = None
        self.end = 0            # bytes in the file

    def add(self, data):
        self.seq += 1
        self.kept.append((self.seq, data))
        self.kept_bytes += len(data)
        if self.kept_bytes > JOURNAL_MEMORY:
            self.spill()

    def ack(self, seq):
        """Parallux has processed every event up to ``seq``: forget them."""
        while self.spilled and self.spilled[0][0] <= seq:
            del self.spilled[0]
        if not self.spilled and self.end:
            os.ftruncate(self.fd, 0)
            self.end = 0
        start = self.start
        while start < len(self.kept) and self.kept[start][0] <= seq:
            self.kept_bytes -= len(self.kept[start][1])
            start += 1
        if start > 64 and start * 2 > len(self.kept):  # (dropped in bulk, not one list shift per event)
            del self.kept[:start]
            start = 0
        self.start = start

    def since(self, seq):
        """The events after ``seq``, in order, for a replay."""
        self.ack(seq)
        replay = [os.pread(self.fd, length, offset) for _, offset, length in self.spilled]
        return replay + [data for _, data in self.kept[self.start:]]

    def spill(self):
        try:
            if self.fd is None:
                self.fd = os.open(self.directory, os.O_RDWR | getattr(os, "O_TMPFILE", 0) | O_CLOEXEC, 0o600)
            for seq, data in self.kept[self.start:]:
                os.pwrite(self.fd, data, self.end)
                self.spilled.append((seq, self.end, len(data)))
                self.end += len(data)
        except OSError:  # (no O_TMPFILE, a full disk): they stay in memory
            return
        self.kept, self.start, self.kept_bytes = [], 0, 0

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def make_private_dir():
    """A new directory only this user can enter, for the attach socket: under $TMPDIR (if absolute and
    short enough for a socket path) or /tmp, named for this user and launcher (so that a guardian can
    remove what a killed launcher left) and a random part. mkdir fails on anything already there, so the
    directory is this launcher's own; in a sticky /tmp no one else can rename or remove it."""
    base = os.environ.get("TMPDIR") or "/tmp"
    if not os.path.isabs(base) or len(base) > 60 or not os.path.isdir(base):
        base = "/tmp"
    for _ in range(8):
        path = os.path.join(base, "%s%s" % (attach_prefix(os.getpid()), bytes_hex(os.urandom(6))))
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        problem = private_dir_problem(path)
        if problem is not None:
            raise OSError(errno.EPERM, problem)
        return path
    raise OSError(errno.EEXIST, "no free name in %s" % base)


def attach_prefix(launcher_pid):
    return "parallux-%d-%d-" % (os.geteuid(), launcher_pid)


def bytes_hex(data):
    return "".join("%02x" % byte for byte in bytearray(data))


def private_dir_problem(path):
    """Why ``path`` is not a directory only this user can enter, or None."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return describe_os_error(exc)
    if not stat.S_ISDIR(info.st_mode):
        return "%s is not a directory" % path
    if info.st_uid != os.geteuid():
        return "%s belongs to uid %d" % (path, info.st_uid)
    if info.st_mode & 0o077:
        return "%s has mode %o: others may enter it" % (path, stat.S_IMODE(info.st_mode))
    return None


def remove_attach_dir(directory):
    for path, remove in ((os.path.join(directory, ATTACH_NAME), os.unlink), (directory, os.rmdir)):
        try:
            remove(path)
        except OSError:
            pass


def remove_attach_dirs_of(launcher_pid):
    """What a killed launcher left of its attach point (the guardian's sweep)."""
    prefix = attach_prefix(launcher_pid)
    for base in set([os.environ.get("TMPDIR") or "/tmp", "/tmp"]):
        try:
            names = [name for name in os.listdir(base) if name.startswith(prefix)]
        except OSError:
            continue
        for name in names:
            if private_dir_problem(os.path.join(base, name)) is None:
                remove_attach_dir(os.path.join(base, name))


def peer_credentials(conn):
    """(pid, uid, gid) of the process at the other end of a Unix socket, as the kernel saw it connect."""
    import socket
    import struct
    option = getattr(socket, "SO_PEERCRED", 17)
    return struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))


def received_fds(ancillary):
    import array
    import socket
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds)


def refuse(conn, why):
    try:
        conn.setblocking(True)
        conn.settimeout(1.0)
        conn.sendall(("refused: %s\n" % why).encode("utf-8"))
    except OSError:
        pass
    conn.close()


BRIDGE_WAIT = 30.0  # seconds the bridge waits for the launcher's answer


def bridge():
    """Attach mode: what a reconnecting SSH runner runs on its new channel. Read the attach request (one
    line of stdin), check the attach point, hand this process's stdin, stdout and stderr to the launcher
    there, and wait for it to let go of them (its end, or a later drop). Whatever prevents the attach goes to
    parallux as one event, {"ev": "refused", "message": ...}; exit status 0 once the launcher said "bye"."""
    import array
    import socket
    try:
        line = read_line(0, ATTACH_LINE)
        request = json.loads(line.decode("utf-8"))
        path, pid = str(request["path"]), int(request["pid"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return refused_attach("not an attach request (%s)" % exc)
    problem = private_dir_problem(os.path.dirname(path))
    if problem is not None:
        return refused_attach("the launcher cannot be reached: %s" % problem)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(BRIDGE_WAIT)
    try:
        conn.connect(path)
        peer = peer_credentials(conn)
        if peer[1] != os.geteuid() or peer[0] != pid:
            return refused_attach("%s is not the launcher's (pid %d, uid %d)" % (path, peer[0], peer[1]))
    except OSError as exc:
        return refused_attach("the launcher (pid %d) cannot be reached: %s" % (pid, describe_os_error(exc)))
    try:
        conn.sendmsg([line + b"\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        answer = b""
        while not answer.endswith(b"\n"):
            data = conn.recv(4096)
            if not data:
                break
            answer += data
    except OSError as exc:  # (the launcher has the channel now, maybe: nothing more is written to it)
        sys.stderr.write("parallux attach: no answer from the launcher: %s\n" % describe_os_error(exc))
        return 1
    if answer.strip() != b"ok":
        return refused_attach(answer.decode("utf-8", "replace").strip() or "the launcher closed the connection")
    said = os.dup(2)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the launcher's now: the channel ends when it lets go of them
        os.dup2(devnull, fd)
    conn.settimeout(None)
    words = b""
    try:
        while True:
            data = conn.recv(64)
            if not data:
                break
            words += data
    except OSError:
        pass
    if words.strip() == b"bye":
        return 0
    os.write(said, b"parallux attach: the launcher let go of this channel without a word (killed, or its "
                   b"connection dropped)\n")
    return 1


def read_line(fd, limit):
    """One line from a descriptor, read byte by byte (nothing after it is taken), without its newline."""
    line = b""
    while len(line) < limit:
        byte = os.read(fd, 1)
        if not byte or byte == b"\n":
            return line
        line += byte
    raise ValueError("a line longer than %d bytes" % limit)


def refused_attach(why):
    os.write(1, (json.dumps({"ev": "refused", "message": why}) + "\n").encode("utf-8"))
    return 1


# -- the guardian -----------------------------------------------------------------------------------------

def guard(launcher_pid):
    """What the process parallux started does once it has forked the launcher: wait for the launcher's end,
    then stop whatever it left behind. A launcher that ends by itself has stopped everything already; one
    that was killed (SIGKILL, the OOM killer) could not, and its commands -- reparented to this subreaper --
    would run on unsupervised. Also the other way round: the launcher gets SIGTERM if this guardian dies
    (PR_SET_PDEATHSIG), and stops everything itself."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # the launcher alone holds the protocol's stream: EOF must follow its death at once
    os.dup2(devnull, 1)
    os.close(devnull)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # (SSH's hang-up, a terminal's): the launcher's to handle, as sent
        signal.signal(sig, lambda signum, _: signal_pids([launcher_pid], signum))
    try:
        _, status = os.waitpid(launcher_pid, 0)
    except ChildProcessError:
        status = 0
    if status != 0:
        sweep_after(launcher_pid)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    os._exit(code)


def sweep_after(launcher_pid):
    """Stop everything below this guardian (TERM, a short grace, KILL) and the launcher's cgroups."""
    cgroups = Cgroups.left_by(launcher_pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        reached = signal_pids(descendants([os.getpid()]), sig)
        if cgroups is not None:
            reached += cgroups.signal_all(sig)
        deadline = now() + (ORPHAN_GRACE if sig == signal.SIGTERM else 1.0)
        while reached and now() < deadline and descendants([os.getpid()]):
            reap_any()
            time.sleep(0.02)
    reap_any()
    if cgroups is not None:
        cgroups.close()
    remove_attach_dirs_of(launcher_pid)


def reap_any():
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def main():
    if sys.argv[-1:] == [ATTACH_ARG]:
        return bridge()
    # The terminal's Ctrl-C is parallux's to handle. A do-nothing handler rather than SIG_IGN: exec resets a
    # handled signal to its default but keeps an ignored one ignored, and commands must keep Ctrl-C's default.
    signal.signal(signal.SIGINT, lambda *_: None)
    become_subreaper()
    guardian = os.getpid()
    child = os.fork()
    if child:
        guard(child)  # never returns
    launcher = Launcher(sys.stdin.fileno(), sys.stdout.fileno())
    grow_pipes(launcher.infd, launcher.outfd)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # end the loop; serve() then stops everything
        signal.signal(sig, lambda signum, _: launcher.stop_serving(signum))
    launcher.guardian = guardian
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if launcher.guardian_gone():  # the guardian died before the line above
        launcher.stop_serving(cause="guardian")
    become_subreaper()
    try:
        launcher.serve()
    finally:
        launcher.files.abandon()  # a transfer cut short leaves no temporary file behind
    return 0


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()  # block-buffered on a Python older than 3.9
    # Everything is written (records, events) and nothing of ours needs finalizing: end at once, so that
    # parallux, waiting for this exit, is not kept waiting for an interpreter teardown.
    os._exit(status)
