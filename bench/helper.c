/*
 * bench/helper.c: the small measuring tools of the rinit benchmarks, in one
 * static binary so that nothing of a shell sits between a timestamp and the
 * event it stamps. Every time is CLOCK_REALTIME, so it can be compared with
 * bash's $EPOCHREALTIME and between processes in different PID namespaces.
 *
 *   helper orphans double N TIMEOUT_MS   N double forks; prints the time from
 *                                        the last fork until no other process
 *                                        than PID 1 and the helper is left
 *   helper orphans burst N TIMEOUT_MS    N orphans alive at once, released
 *                                        together; same clock, from release
 *   helper recv FILE                     writes "ready" to FILE, then on
 *                                        SIGTERM appends the time and exits
 *   helper send PID                      prints the time, then kill(PID, TERM)
 *   helper nswait UNSHARE_PID N T0_US TIMEOUT_MS
 *                                        waits until N `sleep 3600` processes
 *                                        run under UNSHARE_PID's child (the
 *                                        namespace's PID 1); prints now - T0_US
 *   helper restart UNSHARE_PID TIMEOUT_MS
 *                                        SIGKILLs the oldest such `sleep`,
 *                                        prints the time until a new one runs
 *   helper stop PID TIMEOUT_MS           SIGTERM to PID, prints the time until
 *                                        it has exited (pidfd readable)
 *
 * Output lines are "key=value" pairs; the exit status is 0 on success, 3 on a
 * timeout, 2 on bad usage and 1 on any other error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void nap_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int die(const char *what)
{
    perror(what);
    return 1;
}

/* Parses a whole decimal number or exits with status 2. */
static long long number(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        fprintf(stderr, "helper: not a number: %s\n", s);
        exit(2);
    }
    return v;
}

/* Calls fn(pid, arg) for every process in this /proc; stops early when it
 * returns nonzero. Returns the number of processes visited, or -1. */
static long for_each_pid(int (*fn)(pid_t, void *), void *arg)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    long seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        seen++;
        if (fn != NULL && fn((pid_t)atol(e->d_name), arg) != 0)
            break;
    }
    closedir(d);
    return seen;
}

/* ---- orphans ------------------------------------------------------------ */

static int count_others(pid_t pid, void *arg)
{
    long *n = arg;
    if (pid != 1 && pid != getpid())
        (*n)++;
    return 0;
}

/* Polls this namespace's /proc until only PID 1 and this helper are left.
 * Prints the time from t0 to the end of the first scan that found nothing
 * else, the number left at the first scan, and the number of scans. */
static int wait_all_reaped(int64_t t0, long timeout_ms, long n)
{
    int64_t limit = t0 + (int64_t)timeout_ms * 1000000LL;
    long first = -1, scans = 0;
    for (;;) {
        long others = 0;
        if (for_each_pid(count_others, &others) < 0)
            return die("opendir /proc");
        scans++;
        int64_t t = now_ns();
        if (first < 0)
            first = others;
        if (others == 0) {
            printf("orphans=%ld elapsed_us=%.1f left_at_first_scan=%ld scans=%ld\n",
                   n, (t - t0) / 1000.0, first, scans);
            return 0;
        }
        if (t > limit) {
            printf("orphans=%ld elapsed_us=timeout left=%ld left_at_first_scan=%ld scans=%ld\n",
                   n, others, first, scans);
            return 3;
        }
        nap_us(200);
    }
}

/* fork() that waits out a transient EAGAIN instead of giving up. */
static pid_t fork_retry(void)
{
    for (int tries = 0;; tries++) {
        pid_t p = fork();
        if (p >= 0 || errno != EAGAIN || tries > 1000)
            return p;
        nap_us(1000);
    }
}

static int orphans_double(long n, long timeout_ms)
{
    /* The last intermediate child stamps the moment its fork returned. */
    int64_t *last_fork = mmap(NULL, sizeof *last_fork, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (last_fork == MAP_FAILED)
        return die("mmap");
    for (long i = 0; i < n; i++) {
        pid_t mid = fork_retry();
        if (mid < 0)
            return die("fork");
        if (mid == 0) {
            pid_t g = fork_retry();
            if (g == 0)
                _exit(0);
            if (i == n - 1)
                *last_fork = now_ns();
            _exit(g < 0 ? 1 : 0);
        }
        int st;
        if (waitpid(mid, &st, 0) < 0)
            return die("waitpid");
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "helper: fork failed in the middle child\n");
            return 1;
        }
    }
    return wait_all_reaped(*last_fork, timeout_ms, n);
}

static int orphans_burst(long n, long timeout_ms)
{
    int p[2];
    if (pipe(p) != 0)
        return die("pipe");
    pid_t mid = fork_retry();
    if (mid < 0)
        return die("fork");
    if (mid == 0) {
        close(p[1]);
        for (long i = 0; i < n; i++) {
            pid_t g = fork_retry();
            if (g < 0)
                _exit(1);
            if (g == 0) {
                char c;
                while (read(p[0], &c, 1) < 0 && errno == EINTR) {
                }
                _exit(0);
            }
        }
        _exit(0);
    }
    close(p[0]);
    int st;
    if (waitpid(mid, &st, 0) < 0)
        return die("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "helper: fork failed in the middle child\n");
        return 1;
    }
    /* All n are now orphans of PID 1, blocked in read(); EOF frees them. */
    int64_t t0 = now_ns();
    close(p[1]);
    return wait_all_reaped(t0, timeout_ms, n);
}

/* ---- SIGTERM latency ---------------------------------------------------- */

static int recv_fd = -1;

/* Formats v in decimal into buf (no stdio: this runs in a signal handler). */
static size_t fmt_i64(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        buf[len++] = tmp[--n];
    return len;
}

static void on_term(int sig)
{
    (void)sig;
    int64_t t = now_ns();
    char line[40] = "got_ns=";
    size_t len = 7 + fmt_i64(line + 7, t);
    line[len++] = '\n';
    ssize_t w = write(recv_fd, line, len);
    (void)w;
    _exit(0);
}

static int recv_term(const char *path)
{
    recv_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (recv_fd < 0)
        return die(path);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0)
        return die("sigaction");
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (write(recv_fd, "ready\n", 6) != 6)
        return die("write");
    for (;;)
        pause();
}

static int send_term(pid_t pid)
{
    int64_t t = now_ns();
    if (kill(pid, SIGTERM) != 0)
        return die("kill");
    printf("sent_ns=%lld\n", (long long)t);
    return 0;
}

/* ---- services: the process tree under a namespace's PID 1 --------------- */

#define MAX_TREE 4096

/* The first child of pid (unshare's child is the namespace's PID 1). */
static pid_t first_child(pid_t pid)
{
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return (pid_t)atol(buf);
}

/* Waits for unshare's child to appear; 0 on timeout. */
static pid_t find_init(pid_t unshare_pid, int64_t limit)
{
    for (;;) {
        pid_t c = first_child(unshare_pid);
        if (c != 0)
            return c < 0 ? 0 : c;
        if (now_ns() > limit)
            return 0;
        nap_us(100);
    }
}

/* Appends the children of every thread of pid to out[*n..]. */
static void add_children(pid_t pid, pid_t *out, long *n)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char file[96], buf[4096];
        snprintf(file, sizeof file, "/proc/%d/task/%ld/children", pid, atol(e->d_name));
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        for (char *p = buf; *p != '\0';) {
            char *end;
            long c = strtol(p, &end, 10);
            if (end == p)
                break;
            if (*n < MAX_TREE)
                out[(*n)++] = (pid_t)c;
            p = end;
        }
    }
    closedir(d);
}

/* Every descendant of root (root excluded), breadth first. */
static long tree(pid_t root, pid_t *out)
{
    long n = 0;
    add_children(root, out, &n);
    for (long i = 0; i < n; i++)
        add_children(out[i], out, &n);
    return n;
}

/* Is pid running exactly "sleep 3600"? (A forked child that has not exec'd
 * yet still shows its parent's command line, so this means "exec'd".) */
static int is_service(pid_t pid)
{
    static const char want[] = "sleep\0" "3600";
    char path[64], buf[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n == (ssize_t)sizeof want && memcmp(buf, want, sizeof want) == 0;
}

static unsigned long long start_time(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ~0ULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return ~0ULL;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return ~0ULL;
    /* p points at the end of field 2; starttime is field 22. */
    int field = 2;
    for (p++; *p != '\0' && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}

/* The service processes under root, into svc[]; returns how many. */
static long services(pid_t root, pid_t *svc)
{
    static pid_t all[MAX_TREE];
    long n = tree(root, all), k = 0;
    for (long i = 0; i < n; i++)
        if (is_service(all[i]))
            svc[k++] = all[i];
    return k;
}

static int nswait(pid_t unshare_pid, long want, int64_t t0_us, long timeout_ms)
{
    int64_t limit = now_ns() + (int64_t)timeout_ms * 1000000LL;
    pid_t init = find_init(unshare_pid, limit);
    if (init == 0) {
        printf("elapsed_us=timeout running=0\n");
        return 3;
    }
    static pid_t svc[MAX_TREE];
    for (;;) {
        long k = services(init, svc);
        int64_t t = now_ns();
        if (k >= want) {
            printf("elapsed_us=%.1f running=%ld init=%d\n", t / 1000.0 - (double)t0_us, k,
                   init);
            return 0;
        }
        if (t > limit) {
            printf("elapsed_us=timeout running=%ld init=%d\n", k, init);
            return 3;
        }
        nap_us(100);
    }
}

static int restart(pid_t unshare_pid, long timeout_ms)
{
    int64_t limit = now_ns() + (int64_t)timeout_ms * 1000000LL;
    pid_t init = find_init(unshare_pid, limit);
    if (init == 0)
        return die("no init");
    static pid_t before[MAX_TREE], after[MAX_TREE];
    long nb = services(init, before);
    if (nb == 0) {
        fprintf(stderr, "helper: no service process to kill\n");
        return 1;
    }
    /* The one started longest ago: s6-supervise will not relaunch a
     * service within a second of its previous launch. */
    pid_t victim = before[0];
    unsigned long long oldest = start_time(victim);
    for (long i = 1; i < nb; i++) {
        unsigned long long st = start_time(before[i]);
        if (st < oldest) {
            oldest = st;
            victim = before[i];
        }
    }
    int64_t t0 = now_ns();
    if (kill(victim, SIGKILL) != 0)
        return die("kill");
    for (;;) {
        long na = services(init, after);
        int64_t t = now_ns();
        for (long i = 0; i < na; i++) {
            int known = 0;
            for (long j = 0; j < nb && !known; j++)
                known = after[i] == before[j];
            if (!known) {
                printf("elapsed_us=%.1f killed=%d new=%d\n", (t - t0) / 1000.0, victim,
                       after[i]);
                return 0;
            }
        }
        if (t > limit) {
            printf("elapsed_us=timeout killed=%d\n", victim);
            return 3;
        }
        nap_us(50);
    }
}

static int stop(pid_t pid, long timeout_ms)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return die("pidfd_open");
    int64_t t0 = now_ns();
    if (kill(pid, SIGTERM) != 0)
        return die("kill");
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r;
    while ((r = poll(&p, 1, (int)timeout_ms)) < 0 && errno == EINTR) {
    }
    int64_t t = now_ns();
    if (r == 0) {
        printf("elapsed_us=timeout\n");
        return 3;
    }
    if (r < 0)
        return die("poll");
    printf("elapsed_us=%.1f\n", (t - t0) / 1000.0);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: see the comment at the top of bench/helper.c\n");
    return 2;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "orphans") == 0 && argc == 5) {
        long n = (long)number(argv[3]), ms = (long)number(argv[4]);
        if (strcmp(argv[2], "double") == 0)
            return orphans_double(n, ms);
        if (strcmp(argv[2], "burst") == 0)
            return orphans_burst(n, ms);
        return usage();
    }
    if (strcmp(cmd, "recv") == 0 && argc == 3)
        return recv_term(argv[2]);
    if (strcmp(cmd, "send") == 0 && argc == 3)
        return send_term((pid_t)number(argv[2]));
    if (strcmp(cmd, "nswait") == 0 && argc == 6)
        return nswait((pid_t)number(argv[2]), (long)number(argv[3]), number(argv[4]),
                      (long)number(argv[5]));
    if (strcmp(cmd, "restart") == 0 && argc == 4)
        return restart((pid_t)number(argv[2]), (long)number(argv[3]));
    if (strcmp(cmd, "stop") == 0 && argc == 4)
        return stop((pid_t)number(argv[2]), (long)number(argv[3]));
    return usage();
}
