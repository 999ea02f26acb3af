"""Docker's default seccomp profile, as facts in pycont's own layout.

Source of the facts: moby's ``profiles/seccomp/default.json`` (github.com/moby/profiles v0.2.3,
vendored by moby at b985e23). :func:`pycont.security.seccomp.default_profile` turns these tables
into Docker's JSON profile format; nothing here is code from Docker.

The profile is an allow list: every syscall not allowed below fails with EPERM. Some syscalls are
allowed only when the container keeps a capability (``mount`` with CAP_SYS_ADMIN...), only on an
architecture (``arch_prctl`` on amd64) or only for some argument values (``personality``).
"""

from __future__ import annotations

import errno

DEFAULT_ACTION = "SCMP_ACT_ERRNO"
DEFAULT_ERRNO = errno.EPERM

# The architectures a filter covers, by the machine's native one: a 64-bit kernel also runs
# 32-bit programs, whose syscalls arrive with another audit arch and other numbers.
ARCHES: dict[str, tuple[str, ...]] = {
    "SCMP_ARCH_X86_64": ("SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "SCMP_ARCH_AARCH64": ("SCMP_ARCH_ARM",),
    "SCMP_ARCH_MIPS64": ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"),
    "SCMP_ARCH_MIPS64N32": ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"),
    "SCMP_ARCH_MIPSEL64": ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"),
    "SCMP_ARCH_MIPSEL64N32": ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"),
    "SCMP_ARCH_S390X": ("SCMP_ARCH_S390",),
    "SCMP_ARCH_RISCV64": (),
    "SCMP_ARCH_LOONGARCH64": (),
}

# Allowed whatever the capabilities and the architecture. Names a machine's libseccomp does not
# know (another arch's syscalls, ones newer than the library) are skipped when the filter is built.
_ALWAYS = """
    accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
    chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
    clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
    copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
    epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir
    fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
    flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
    fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv
    futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
    getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid
    getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
    getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32
    getxattr getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel
    ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
    io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
    landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount listxattr
    listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
    map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
    mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
    mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl
    msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat
    _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
    pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
    process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink
    readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
    removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe rmdir
    rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
    rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
    sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
    sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
    sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
    setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount
    statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
"""
ALWAYS: tuple[str, ...] = tuple(_ALWAYS.split())

# Allowed only under a condition. (names, condition) with condition one of
#   "cap CAP_X"        the container keeps capability CAP_X (capabilities(7) names the syscalls
#                      each capability guards: mount needs CAP_SYS_ADMIN, reboot CAP_SYS_BOOT...)
#   "arch a b ..."     the machine's architecture (Docker's names: amd64, arm64, x86, ...) is one of
#   "kernel X.Y"       the running kernel is at least X.Y
ALLOWED_IF: tuple[tuple[str, str], ...] = (
    # ptrace could bypass seccomp before 4.8 (the filter was not re-checked after a tracer's
    # change of the syscall number); from 4.8 the kernel runs the filter again after the tracer.
    ("process_vm_readv process_vm_writev ptrace", "kernel 4.8"),
    ("sync_file_range2 swapcontext", "arch ppc64le"),
    ("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
     "arch arm arm64"),
    ("arch_prctl", "arch amd64 x32"),
    ("modify_ldt", "arch amd64 x32 x86"),
    ("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr", "arch s390 s390x"),
    ("riscv_flush_icache", "arch riscv64"),
    ("open_by_handle_at", "cap CAP_DAC_READ_SEARCH"),
    ("bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie "
     "lsm_get_self_attr lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount "
     "open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog "
     "umount umount2 unshare", "cap CAP_SYS_ADMIN"),
    ("reboot", "cap CAP_SYS_BOOT"),
    ("chroot", "cap CAP_SYS_CHROOT"),
    ("delete_module init_module finit_module", "cap CAP_SYS_MODULE"),
    ("acct", "cap CAP_SYS_PACCT"),
    ("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
     "cap CAP_SYS_PTRACE"),
    ("iopl ioperm", "cap CAP_SYS_RAWIO"),
    ("settimeofday stime clock_settime clock_settime64", "cap CAP_SYS_TIME"),
    ("vhangup", "cap CAP_SYS_TTY_CONFIG"),
    ("get_mempolicy mbind set_mempolicy set_mempolicy_home_node", "cap CAP_SYS_NICE"),
    ("syslog", "cap CAP_SYSLOG"),
    ("bpf", "cap CAP_BPF"),
    ("perf_event_open", "cap CAP_PERFMON"),
)  # fmt: skip

# socket(2): every address family but AF_ALG (38) and AF_VSOCK (40), as three ranges.
SOCKET_FAMILY = (("SCMP_CMP_LT", 38), ("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40))

# personality(2): only the personas a normal program asks for. PER_LINUX, PER_LINUX32,
# UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query the current persona without changing it).
# The others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...) weaken the address-space defences.
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# clone(2) without CAP_SYS_ADMIN: only when no CLONE_NEW* flag is set (flags & mask == 0).
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
# CLONE_NEWNET; the flags are argument 0, except on s390 where they come second.
CLONE_NAMESPACE_FLAGS = 0x7E020000
CLONE_FLAGS_ARG = {"s390": 1, "s390x": 1}  # other arches: 0

# clone3(2) passes its flags in a struct that a seccomp filter cannot read: without CAP_SYS_ADMIN
# it fails with ENOSYS, so libc falls back to clone(2), whose flags the filter checks.
CLONE3_ERRNO = errno.ENOSYS
