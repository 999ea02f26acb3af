/*
 * pycont-mon: the monitor of one detached container, as podman's conmon.
 *
 * The Python shim sets the container up, then execve(2)s this program: the process (and so
 * its child, the container's init) stays the same, but a whole interpreter (~13 MiB) becomes
 * a few hundred KiB. It waits for the init, writes its exit code to <container>/exit, and
 * execs the shim's "finish" step (record the end, release the cgroup and network, --rm).
 *
 *   pycont-mon hold  PID DIR STATUS_FD PYTHON SHIM
 *       PID is our child. STATUS_FD: the caller's status pipe, passed on to "finish".
 *   pycont-mon adopt PID START DIR PYTHON SHIM
 *       Live restore: the monitor of a running container was killed, and the init, now a
 *       child of the host's init, would be reaped there with its exit code. We cannot become
 *       its parent, but a tracer's waitpid(2) is told how its tracee ended too (ptrace(2)),
 *       once the whole thread group has exited.
 *       Forks; the child seizes PID (if its start time is still START: proc(5) field 22),
 *       takes <DIR>/shim.lock and prints "<pid>\n" on stdout; the parent exits at once.
 *
 * Exit codes as a shell reports them: the code, or 128 + the signal (docker's 137).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t target;

static void forward(int sig) {
    if (target > 0)
        kill(target, sig);
}

static int shell_code(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 137;
}

/* <dir>/exit, written whole or not at all (rename(2)); a folder renamed by rm is gone. */
static void record(const char *dir, int code) {
    char tmp[4096], path[4096], text[16];
    if (snprintf(tmp, sizeof tmp, "%s/exit.tmp.%d", dir, (int)getpid()) >= (int)sizeof tmp ||
        snprintf(path, sizeof path, "%s/exit", dir) >= (int)sizeof path)
        return;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int n = snprintf(text, sizeof text, "%d\n", code);
    int ok = write(fd, text, n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}

/* The shim's last step, in a fresh interpreter: only now is Python needed again. */
static int finish(const char *python, const char *shim, const char *dir, const char *status_fd,
                  int code) {
    char num[16];
    snprintf(num, sizeof num, "%d", code);
    execl(python, python, "-I", "-S", shim, "finish", dir, status_fd, num, (char *)NULL);
    return code; /* no interpreter: the exit file says how it ended */
}

static long start_time(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return -1;
    for (int field = 2; field < 22; field++) { /* proc(5): starttime is field 22 */
        p = strchr(p + 1, ' ');
        if (!p)
            return -1;
    }
    return strtol(p + 1, NULL, 10);
}

static int hold(pid_t pid, const char *dir, const char *status_fd, const char *py,
                const char *shim) {
    int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    struct sigaction sa = {0};
    sa.sa_handler = forward;
    target = pid;
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaction(forwarded[i], &sa, NULL); /* no SA_RESTART: waitpid returns EINTR */
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 137;
    int code = shell_code(status);
    record(dir, code);
    return finish(py, shim, dir, status_fd, code);
}

static int adopt(pid_t pid, long start, const char *dir, const char *py, const char *shim) {
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child > 0)
        return 0; /* the caller reads our child's pid, or EOF, on stdout */
    setsid();
    if (start_time(pid) != start) { /* not the container's init any more (pid reused) */
        fprintf(stderr, "pycont-mon: process %d is not the container's init\n", (int)pid);
        _exit(1);
    }
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0) {
        fprintf(stderr, "pycont-mon: ptrace(PTRACE_SEIZE, %d): %s\n", (int)pid, strerror(errno));
        _exit(1);
    }
    if (start_time(pid) != start) { /* reused in between: stop it, let go, leave */
        int st;
        ptrace(PTRACE_INTERRUPT, pid, 0, 0);
        waitpid(pid, &st, __WALL);
        ptrace(PTRACE_DETACH, pid, 0, 0);
        _exit(1);
    }
    char lock[4096];
    if (snprintf(lock, sizeof lock, "%s/shim.lock", dir) < (int)sizeof lock) {
        int fd = open(lock, O_RDWR | O_CREAT, 0600); /* kept until we exit, also across exec */
        if (fd >= 0)
            flock(fd, LOCK_SH);
    }
    printf("%d\n", (int)getpid());
    fflush(stdout);
    int devnull = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3 && devnull >= 0; fd++)
        dup2(devnull, fd);
    int status, code = -1;
    for (;;) {
        if (waitpid(pid, &status, __WALL) < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: gone without a word to us (reaped first): unknown */
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            code = shell_code(status);
            break;
        }
        if (!WIFSTOPPED(status))
            continue;
        int sig = WSTOPSIG(status);
        if (status >> 16 == PTRACE_EVENT_STOP) {
            /* A group-stop (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) stays stopped until SIGCONT:
             * LISTEN. Any other PTRACE_EVENT_STOP (the one after SIGCONT) resumes. */
            if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
                ptrace(PTRACE_LISTEN, pid, 0, 0);
            else
                ptrace(PTRACE_CONT, pid, 0, 0);
        } else {
            ptrace(PTRACE_CONT, pid, 0, sig); /* a signal on its way: deliver it unchanged */
        }
    }
    if (code < 0)
        code = 137;
    record(dir, code);
    return finish(py, shim, dir, "-1", code);
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "hold") == 0)
        return hold(atoi(argv[2]), argv[3], argv[4], argv[5], argv[6]);
    if (argc == 7 && strcmp(argv[1], "adopt") == 0)
        return adopt(atoi(argv[2]), atol(argv[3]), argv[4], argv[5], argv[6]);
    fprintf(stderr, "usage: pycont-mon hold PID DIR STATUS_FD PYTHON SHIM\n"
                    "       pycont-mon adopt PID START DIR PYTHON SHIM\n");
    return 2;
}
