"""The grading kernel: runs one submission's cells, then calls its functions.

Started by :mod:`qlib.course.kernel`, one process per submission (and per
retry), as ``python -m qlib.course.worker [--keep DIR ...] [--hide DIR ...]
[--user NAME] [--tmpfs]``,
usually as the first process of fresh PID and mount namespaces.  It

1. reads its job (the cells to run) from stdin before any submitted code
   runs;
2. sets up its sandbox: hides the given folders behind empty read-only
   mounts, gives itself private ``/tmp``-like folders, drops root for
   ``--user``, and sets resource limits;
3. runs the cells in an IPython shell with stdout/stderr sent to /dev/null;
4. answers the grader's requests (``--requests-fd``), one at a time: call a
   graded function on given inputs, reply with the return value as plain data
   (:mod:`qlib.course.wire`) and the request's nonce, on the events pipe
   (``--events-fd``), one JSON line per message.

Nothing here decides a score: the grader compares the values, in its own
process, with answers the submission never sees.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import sys
import tempfile

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC = 32, 4096, 16384
_O_PATH_DIR = getattr(os, "O_PATH", 0o10000000) | os.O_DIRECTORY
_MOUNT_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC}
_PR_CAPBSET_DROP, _PR_SET_NO_NEW_PRIVS = 24, 38
_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(status: int, what: str) -> None:
    if status != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount_tmpfs(target: str, options: str, readonly: bool = False) -> None:
    flags = _MS_NOSUID | _MS_NODEV | (_MS_RDONLY if readonly else 0)
    status = _LIBC.mount(b"tmpfs", target.encode(), b"tmpfs", flags, options.encode())
    _check(status, f"mount tmpfs on {target}")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _bind_back(fd: int, folder: str) -> None:
    """Mount the folder open as ``fd`` (with everything mounted below it) at
    ``folder`` again, once a fresh tmpfs has covered it."""
    os.makedirs(folder, exist_ok=True)
    source = f"/proc/self/fd/{fd}".encode()
    status = _LIBC.mount(source, folder.encode(), None, _MS_BIND | _MS_REC, None)
    _check(status, f"bind {folder} back")


def _minimal_dev() -> None:
    """Replace /dev by a fresh one holding only null, zero, full, random and
    urandom: no disks, no kernel log, no terminals of the host."""
    import stat

    _check(
        _LIBC.mount(b"tmpfs", b"/dev", b"tmpfs", _MS_NOSUID, b"size=64k,mode=755"),
        "mount tmpfs on /dev",
    )
    for name, minor in (("null", 3), ("zero", 5), ("full", 7), ("random", 8)):
        os.mknod(f"/dev/{name}", 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    os.mknod("/dev/urandom", 0o666 | stat.S_IFCHR, os.makedev(1, 9))
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")


def _read_only_everywhere(writable: set[str]) -> None:
    """Remount every mount of this (private) namespace read-only, except
    ``writable`` -- /proc included, so no sysctl can be written.  Device files
    keep working on a read-only mount, so /dev/null stays usable."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split() for line in f]
    for fields in mounts:
        point = fields[4].replace("\\040", " ")
        if point in writable:
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        for option in fields[5].split(","):
            flags |= _MOUNT_FLAGS.get(option, 0)
        status = _LIBC.mount(None, point.encode(), None, flags, None)
        if status != 0 and point in ("/", "/proc", "/sys"):
            _check(status, f"remount {point} read-only")


def _drop_capabilities() -> None:
    """Stay uid 0 but without any capability, for good: no unmounting, no
    raising limits, no reading through permissions, nothing regained by exec."""
    for cap in range(64):
        if _LIBC.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")
        ]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    _check(_LIBC.capset(ctypes.byref(header), data), "capset")
    _check(_LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _sandbox(args: argparse.Namespace, limits: dict) -> str:
    """Hide folders, make private scratch space, drop privileges, set limits.

    Returns the working folder for the submission.
    """
    for cgroup in args.cgroup:  # "0" moves this process; what it starts follows
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write("0")
    uid = gid = None
    if args.user:
        import pwd

        entry = pwd.getpwnam(args.user)
        uid, gid = entry.pw_uid, entry.pw_gid
    # the folders the kernel keeps reading (its Python, qlib), opened before
    # anything covers them, so they can be mounted back where they were
    kept = [
        (folder, os.open(folder, _O_PATH_DIR))
        for folder in args.keep
        if os.path.isdir(folder)
    ]
    scratch = set()
    if args.tmpfs:
        _minimal_dev()
        size = f"size={limits['disk_mb']}m,mode=1777"
        for folder in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(folder):
                _mount_tmpfs(folder, size)
                scratch.add(folder)
        for folder, fd in kept:
            if any(_inside(folder, s) and folder != s for s in scratch):
                _bind_back(fd, folder)
    for fd in (fd for _folder, fd in kept):
        os.close(fd)
    # hidden last, so that a hidden folder inside a kept one is hidden too
    for folder in args.hide:
        if os.path.isdir(folder):
            _mount_tmpfs(folder, "size=4k,mode=000", readonly=True)
    if args.tmpfs:
        _read_only_everywhere(scratch)
    work = tempfile.mkdtemp(prefix="submission-")
    if uid is not None:
        os.chown(work, uid, gid)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    elif os.geteuid() == 0 and args.tmpfs:
        _drop_capabilities()
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"],) * 2)
    if uid is not None:  # counted per user, so only meaningful off root
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    os.environ["HOME"] = work
    os.environ["IPYTHONDIR"] = os.path.join(work, ".ipython")
    os.environ["MPLCONFIGDIR"] = os.path.join(work, ".matplotlib")
    os.chdir(work)
    return work


def _error_text(err: BaseException | None) -> str | None:
    if err is None:
        return None
    try:
        text = f"{type(err).__name__}: {err}"
    except BaseException:  # a hostile __str__
        text = type(err).__name__
    return text[:300]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hide", action="append", default=[])
    parser.add_argument("--keep", action="append", default=[])
    parser.add_argument("--user")
    parser.add_argument("--tmpfs", action="store_true")
    parser.add_argument("--cgroup", action="append", default=[])
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--requests-fd", type=int, required=True)
    args = parser.parse_args()

    events = os.fdopen(args.events_fd, "w", buffering=1, encoding="utf-8")

    def emit(**message) -> None:
        events.write(json.dumps(message, separators=(",", ":")) + "\n")
        events.flush()

    job = json.loads(sys.stdin.buffer.read())
    try:
        _sandbox(args, job["limits"])
    except Exception as err:  # the grader reports this as its own failure
        emit(fatal=f"sandbox setup failed: {_error_text(err)}")
        os._exit(3)

    try:  # a missing package or an unreadable installation is the grader's
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        from qlib.course import wire

        config = Config()
        config.HistoryManager.enabled = False
        shell = InteractiveShell.instance(config=config)
    except BaseException as err:
        import traceback

        traceback.print_exc()  # to the grader, which keeps it for its report
        emit(fatal=f"the kernel could not start: {_error_text(err)}")
        os._exit(3)
    shell.system = lambda cmd: print("shell commands are disabled while grading")

    # submitted code never sees the job, the events pipe's twin, or a terminal
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    emit(ready=True)

    skip = set(job["skip"])
    for index, source in enumerate(job["cells"]):
        if index in skip:
            continue
        emit(cell=index, phase="start")
        try:
            result = shell.run_cell(source, store_history=False)
            error = result.error_before_exec or result.error_in_exec
        except BaseException as err:
            error = err
        emit(cell=index, phase="end", error=_error_text(error))

    emit(cells_done=True)

    # then answer the grader's requests, one at a time, until it hangs up
    requests = os.fdopen(args.requests_fd, "rb")
    for line in requests:
        try:
            call = json.loads(line)
            reply = {"reply": call["id"], "nonce": call["nonce"]}
        except (ValueError, KeyError, TypeError):
            continue
        try:
            function = shell.user_ns.get(call["function"])
            if not callable(function):
                raise NameError(f"{call['function']} is not defined")
            args = wire.decode(call["args"])
            kwargs = wire.decode(call["kwargs"])
            reply["value"] = wire.encode(function(*args, **kwargs))
        except NotImplementedError:
            reply["error"] = "not answered yet"
        except BaseException as err:
            reply["error"] = _error_text(err)
        try:
            emit(**reply)
        except (TypeError, ValueError) as err:  # an answer JSON cannot carry
            emit(reply=reply["reply"], nonce=reply["nonce"], error=_error_text(err))
    os._exit(0)  # no atexit hooks, no lingering threads


if __name__ == "__main__":
    main()
