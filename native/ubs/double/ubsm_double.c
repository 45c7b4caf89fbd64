/*
 * Test double of the UB memory SDK, built as libubsm_sdk.so.
 *
 * WHAT IT STANDS IN FOR. The vendor's libubsm_sdk.so, the ubsmd daemon behind it, UBSE and the obmm kernel
 * driver. None of them can run here (no UB hardware, no obmm module). This library exports the same ABI
 * (native/ubs/include/ubs_mem.h) and keeps the daemon's state in files, so that every process that loads
 * it (the agent on the host and consumers inside containers) sees the same shares.
 *
 * KEPT FAITHFUL (docs/ubs-sdk.md A.3-A.7, B.1-B.4):
 *  - initialize dlopens the obmm library by absolute path (/usr/lib64/libobmm.so.1) and connects a UNIX
 *    stream socket to <dir>/MxmAgentIpcServer, with HCOM's retry/backoff: HCOM_CONNECTION_RETRY_TIMES
 *    (1..10, default 5) attempts, sleeping min(2^n, HCOM_CONNECTION_RETRY_INTERVAL_SEC (1..60, default 20))
 *    seconds after failure n; any failure is 6015. Socket permissions are enforced by the kernel, exactly as
 *    for the real client. The link stays open until finalize; shm calls without it return 6040, and so do
 *    calls after the peer hung up (the daemon went away).
 *  - argument checks and their codes (name 1..47 chars of [A-Za-z0-9.:_-], size multiple of 4 MiB after
 *    rounding to 4 KiB, flag mask and combinations, map offset 0 / MAP_SHARED / whole real length / one map
 *    per name per process), owner = caller's euid/egid, mode checked on every map (owner bits, then group
 *    bits if the primary gid matches, then other bits; x ignored; prot not covered -> 6011), deallocate
 *    needs uid AND gid (no root bypass) and fails 6024 while anyone maps the name or any node still has it
 *    attached, real size rounded up to the block size (default 128 MiB).
 *  - device open mode from the GRANTED bits, not the requested prot (A.5): every node is opened O_RDWR when
 *    the mode grants the caller w, O_RDONLY otherwise. So a non-root caller granted rw (share 0666) fails
 *    with 6051 even for a PROT_READ map through a 0444 node, as with the real SDK.
 *  - device nodes: a node's first live mapping "attaches" the share there: memids (spread over 1..2^20-1,
 *    unique, different on every re-attach) and char nodes <devdir>/obmm_shmdev<memid> = makedev(major,
 *    memid), made root's 0600 (as devtmpfs makes them), then chowned to the share creator's uid/gid and
 *    chmod'ed to mode & 0666 as UBSE does right after the import
 *    (B.2). Every mapping process open()s each node itself, in its own mount namespace, so a container
 *    without the node or without a devices-cgroup rule fails with 6051 just like with the real SDK. An
 *    explicit unmap by the last local user detaches at once (B.2): memids forgotten, nodes unlinked. lookup
 *    only answers while the share is attached on the caller's node.
 *  - process death: a mapping is alive while its process holds flock(LOCK_EX) on <state>/maps/<name>@<node>@<id>
 *    (the kernel drops our lock when the process dies). Dead entries are swept at the start of every call.
 *    finalize drops the link, which ubsmd treats exactly as exit (A.3, B.4): its mappings leave the user
 *    set the same way a dead process's do.
 *  - delayed-removal records (B.4): a process that dies or finalizes while it is the ONLY local user of a
 *    share leaves a record <state>/reap/<name>@<node>, not an immediate detach; with other local users left
 *    it just leaves the user set. While the record is pending, allocate, deallocate and map of that name on
 *    that node return 6017 (lookup still answers: the share is still attached). Its handler detaches the
 *    share from the node (memids forgotten, nodes unlinked) and never deletes it: the data stays, and the
 *    next map re-attaches with new memids. The double has no daemon process, so the handler runs in
 *    whichever call sweeps first once the delay (UBSM_DOUBLE_REAP_DELAY_MS / reap_delay_ms, default 0: the
 *    very sweep that creates the record) has passed since the record was made.
 *
 * DIFFERS:
 *  - memory is a sparse file <state>/data/<name> mmapped MAP_SHARED, not obmm devices; the stand-in major
 *    (UBSM_DOUBLE_MAJOR, default 509) has no driver, so open() of a device node gives ENXIO, which the
 *    double takes as "the node is there and DAC + the devices cgroup let this process open it".
 *  - the real daemon keeps its state in its own process and checks credentials from the socket peer. Here
 *    every caller reads and writes <dir>/.ubsm-double/ itself, so that directory is created 0777 and its
 *    files 0666; credentials are the caller's own geteuid()/getegid(). Nothing is spoken over the socket.
 *  - no regions besides "default", no UBSE timeouts (6099) unless injected through the control file, no
 *    reconnect after the daemon restarts, no HCOM worker threads, no ubsmem_shmem_attach/detach exports
 *    (unusable in the real SDK, A.3), no 6017 for a name being created concurrently (the state lock
 *    serialises callers). A death is noticed at the next call's sweep, not at once as ubsmd's link-down
 *    event does, so the delay of a record counts from that sweep; a record's handler never fails, so the
 *    daemon's retry backoff (B.4) does not arise.
 *  - mknod needs CAP_MKNOD: when a non-root process attaches first, mknod fails with EPERM and the double
 *    carries on without the node (the open then fails with 6051 unless the node exists). EEXIST (a stale
 *    node with the same number) is tolerated and chowned/chmod'ed like a new node. Nodes are only unlinked
 *    by a process in the mount namespace that created them (recorded in the attachment); otherwise they are
 *    left behind, harmless.
 *  - the mapping is inherited across fork and the lock fd too (the real kernel mapping is VM_DONTCOPY).
 *
 * ENVIRONMENT: UBSM_DOUBLE_DIR (daemon dir, default /run/matrix/memory), UBSM_DOUBLE_NODE (node name, default
 * "local"), UBSM_DOUBLE_DEV_DIR (default /dev), UBSM_DOUBLE_MAJOR (default 509), UBSM_DOUBLE_OBMM (default
 * /usr/lib64/libobmm.so.1), UBSM_DOUBLE_REAP_DELAY_MS (ms before a delayed-removal record's handler runs,
 * default 0 = at the sweep that creates it; read by the process that sweeps), HCOM_CONNECTION_RETRY_TIMES,
 * HCOM_CONNECTION_RETRY_INTERVAL_SEC.
 *
 * CONTROL FILE <dir>/.ubsm-double/control, re-read on every call, "key=value" lines:
 *   delay_ms=N, delay_ms.<op>=N (the per-op value wins), fail.<op>=CODE, fail.<op>.count=N (only the next N
 *   calls fail; decremented in the file), block_size=BYTES (default 134217728, read at allocate),
 *   capacity=BYTES (pool quota, default 1 TiB; 6022 when exceeded), reap_delay_ms=N (wins over
 *   UBSM_DOUBLE_REAP_DELAY_MS; checked against each record's age at every sweep, so lowering it lets a
 *   pending record run at the next call).
 *   ops: initialize allocate deallocate map unmap lookup list_lookup local_nid_query (finalize: delay only;
 *   init_attributes and set_logger_level are local and never delayed). fail.<op> without a count fails
 *   every call. Order per call: delay, injected failure, then the real checks.
 *
 * SETUP NOTES: the state dir is created by the first successful initialize (the agent, as root, on the host);
 * a container needs the daemon dir bind-mounted read-write at UBSM_DOUBLE_DIR (default /run/matrix/memory)
 * and the same UBSM_DOUBLE_NODE as its host. Node names must be path-safe ([A-Za-z0-9._-]).
 */
#define _GNU_SOURCE
#include "ubs_mem.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Paths are built with snprintf into PATH_MAX buffers; one that would be truncated is longer than the kernel
 * accepts anyway and fails at open(), so gcc's truncation warning is noise here. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

/* One no-op per stand-in dependency, so the dynamic loader must find each library (see build.sh). */
extern int ubsm_standin_numa(void);
extern int ubsm_standin_hcom(void);
extern int ubsm_standin_boundscheck(void);

#define FOUR_MIB (4UL << 20)
#define DEFAULT_BLOCK (128UL << 20)
#define DEFAULT_CAPACITY (1UL << 40)
#define MEMID_MAX 1048575u /* MINORMASK */
#define ALLOWED_FLAGS 0x3FUL

struct mapping {
    char name[MAX_SHM_NAME_LENGTH + 1];
    void *ptr;
    size_t len;
    int lockfd;
    char lockpath[PATH_MAX];
    struct mapping *next;
};

struct share {
    size_t size, req;
    unsigned long long block, flags;
    unsigned mode, uid, gid;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* process state; koffi calls from many threads */
static int g_link = -1;
static void *g_obmm;
static int g_log_level;
static struct mapping *g_maps;
static unsigned g_seq;

/* ---------- paths and small helpers ---------- */

static const char *env_or(const char *k, const char *d) {
    const char *v = getenv(k);
    return v && *v ? v : d;
}
static const char *node_name(void) { return env_or("UBSM_DOUBLE_NODE", "local"); }
static const char *dev_dir(void) { return env_or("UBSM_DOUBLE_DEV_DIR", "/dev"); }

/* <state>/<fmt...>: the state dir is UBSM_DOUBLE_STATE, by default <dir>/.ubsm-double. Containers
 * get the daemon's socket directory read-only (as the real one needs), so tests bind the state
 * dir into them on its own, read-write, and name it with UBSM_DOUBLE_STATE. */
static void spath(char *out, const char *fmt, ...) {
    char rest[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    const char *state = getenv("UBSM_DOUBLE_STATE");
    if (state && *state)
        snprintf(out, PATH_MAX, "%s%s%s", state, *rest ? "/" : "", rest);
    else
        snprintf(out, PATH_MAX, "%s/.ubsm-double%s%s", env_or("UBSM_DOUBLE_DIR", "/run/matrix/memory"), *rest ? "/" : "",
                 rest);
}

static int mkdir_open(const char *p) {
    if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
    chmod(p, 0777); /* umask; ignore EPERM when someone else created it */
    return 0;
}

static int ensure_state_dirs(void) {
    static const char *subs[] = {"", "data", "shares", "attach", "prev", "maps", "reap"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        spath(p, "%s", subs[i]);
        if (mkdir_open(p) != 0) return -1;
    }
    return 0;
}

/* Whole-state lock: every op that reads or changes shared state holds it (flock is per open file
 * description, so it also serialises threads of one process). Returns -1 if the state dir is missing. */
static int state_lock(void) {
    char p[PATH_MAX];
    spath(p, "lock");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return -1;
    fchmod(fd, 0666);
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR) {}
    return fd;
}
static void state_unlock(int fd) {
    if (fd >= 0) close(fd);
}

static char *read_file(const char *p) {
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    ssize_t r;
    while (b && (r = read(fd, b + n, cap - n)) > 0) {
        n += (size_t)r;
        if (n == cap) b = realloc(b, (cap *= 2) + 1);
    }
    close(fd);
    if (b) b[n] = 0;
    return b;
}

/* Atomic replace (tmp + rename), mode 0666 so every caller can rewrite it later. */
static int write_file(const char *p, const char *text) {
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%lu", p, (int)getpid(), (unsigned long)pthread_self());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return -1;
    fchmod(fd, 0666);
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    if (!ok || rename(tmp, p) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---------- control file ---------- */

/* Value of `key` in the control text, or NULL. */
static const char *ctl_find(const char *text, const char *key, size_t *vlen) {
    size_t kl = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        while (*l == ' ' || *l == '\t') l++;
        if (strncmp(l, key, kl) == 0 && l[kl] == '=') {
            const char *v = l + kl + 1;
            *vlen = strcspn(v, "\r\n");
            return v;
        }
    }
    return NULL;
}

static unsigned long long ctl_num(const char *text, const char *key, unsigned long long dflt) {
    size_t vl;
    const char *v = text ? ctl_find(text, key, &vl) : NULL;
    return v ? strtoull(v, NULL, 10) : dflt;
}

static char *ctl_read(void) {
    char p[PATH_MAX];
    spath(p, "control");
    return read_file(p);
}

/* Sleep as the control file says, then return an injected failure code for `op` (0 = none). */
static int prologue(const char *op) {
    char key[64];
    char *t = ctl_read();
    if (!t) return 0;
    snprintf(key, sizeof key, "delay_ms.%s", op);
    unsigned long long ms = ctl_num(t, key, ctl_num(t, "delay_ms", 0));
    snprintf(key, sizeof key, "fail.%s", op);
    int code = (int)ctl_num(t, key, 0);
    free(t);
    if (ms) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
    if (!code) return 0;
    /* count: re-read under the state lock, decrement in place */
    int lk = state_lock();
    char p[PATH_MAX];
    spath(p, "control");
    t = read_file(p);
    snprintf(key, sizeof key, "fail.%s.count", op);
    size_t vl;
    const char *v = t ? ctl_find(t, key, &vl) : NULL;
    if (v) {
        long n = strtol(v, NULL, 10);
        if (n <= 0) {
            code = 0;
        } else {
            char num[32];
            int nl = snprintf(num, sizeof num, "%ld", n - 1);
            size_t pre = (size_t)(v - t);
            char *out = malloc(strlen(t) + (size_t)nl + 1);
            if (out) {
                memcpy(out, t, pre);
                memcpy(out + pre, num, (size_t)nl);
                strcpy(out + pre + (size_t)nl, v + vl);
                write_file(p, out);
                free(out);
            }
        }
    }
    free(t);
    state_unlock(lk);
    return code;
}

/* ---------- records ---------- */

static int valid_name(const char *n) {
    if (!n) return 0;
    size_t l = strnlen(n, MAX_SHM_NAME_LENGTH);
    if (l == 0 || l >= MAX_SHM_NAME_LENGTH) return 0;
    for (const char *c = n; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || strchr(".:_-", *c)))
            return 0;
    return 1;
}

static int share_load(const char *name, struct share *s) {
    char p[PATH_MAX];
    spath(p, "shares/%s", name);
    char *t = read_file(p);
    if (!t) return -1;
    int n = sscanf(t, "size=%zu\nreq=%zu\nblock=%llu\nmode=%o\nflags=%llu\nuid=%u\ngid=%u", &s->size, &s->req,
                   &s->block, &s->mode, &s->flags, &s->uid, &s->gid);
    free(t);
    return n == 7 ? 0 : -1;
}

static int share_store(const char *name, const struct share *s) {
    char p[PATH_MAX], t[512];
    spath(p, "shares/%s", name);
    snprintf(t, sizeof t, "size=%zu\nreq=%zu\nblock=%llu\nmode=%o\nflags=%llu\nuid=%u\ngid=%u\n", s->size, s->req,
             s->block, s->mode, s->flags, s->uid, s->gid);
    return write_file(p, t);
}

/* Attachment <state>/attach/<name>@<node>: "mntns=<ns>\ndevdir=<dir>\nmemids=<a> <b> ...\n". */
struct attach {
    char mntns[64];
    char devdir[PATH_MAX];
    uint32_t n;
    uint64_t ids[MAX_MEMID_NUM];
};

static void my_mntns(char *out, size_t n) {
    ssize_t r = readlink("/proc/self/ns/mnt", out, n - 1);
    out[r > 0 ? r : 0] = 0;
}

static int parse_ids(const char *s, uint64_t *ids, uint32_t max) {
    uint32_t n = 0;
    char *end;
    while (s && n < max) {
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s) break;
        ids[n++] = v;
        s = end;
    }
    return (int)n;
}

static int attach_load(const char *name, const char *node, struct attach *a) {
    char p[PATH_MAX];
    spath(p, "attach/%s@%s", name, node);
    char *t = read_file(p);
    if (!t) return -1;
    memset(a, 0, sizeof *a);
    size_t vl;
    const char *v;
    if ((v = ctl_find(t, "mntns", &vl))) snprintf(a->mntns, sizeof a->mntns, "%.*s", (int)vl, v);
    if ((v = ctl_find(t, "devdir", &vl))) snprintf(a->devdir, sizeof a->devdir, "%.*s", (int)vl, v);
    if ((v = ctl_find(t, "memids", &vl))) a->n = (uint32_t)parse_ids(v, a->ids, MAX_MEMID_NUM);
    free(t);
    return 0;
}

static void dev_path(char *out, const char *devdir, uint64_t id) {
    snprintf(out, PATH_MAX, "%s/obmm_shmdev%llu", devdir, (unsigned long long)id);
}

/* Forget an attachment: remember its memids (so the next attach differs) and unlink its nodes. */
static void detach(const char *name, const char *node) {
    struct attach *a = malloc(sizeof *a);
    char p[PATH_MAX], ns[64];
    if (a && attach_load(name, node, a) == 0) {
        my_mntns(ns, sizeof ns);
        if (strcmp(ns, a->mntns) == 0) {
            for (uint32_t i = 0; i < a->n; i++) {
                dev_path(p, a->devdir, a->ids[i]);
                unlink(p); /* best effort */
            }
        }
        char *t = malloc(a->n * 21 + 2), *o = t;
        if (t) {
            *o = 0;
            for (uint32_t i = 0; i < a->n; i++) o += sprintf(o, "%llu ", (unsigned long long)a->ids[i]);
            spath(p, "prev/%s@%s", name, node);
            write_file(p, t);
            free(t);
        }
    }
    free(a);
    spath(p, "attach/%s@%s", name, node);
    unlink(p);
}

/* Does the maps dir hold an entry for name (and node, if not NULL)? Only live entries remain after sweep(). */
static int has_map(const char *name, const char *node) {
    char p[PATH_MAX], pre[MAX_SHM_NAME_LENGTH + 256];
    spath(p, "maps");
    if (node) snprintf(pre, sizeof pre, "%s@%s@", name, node);
    else snprintf(pre, sizeof pre, "%s@", name);
    DIR *d = opendir(p);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) found = strncmp(e->d_name, pre, strlen(pre)) == 0;
    closedir(d);
    return found;
}

/* ---------- delayed-removal records (docs/ubs-sdk.md B.4) ----------
 * <state>/reap/<name>@<node>: "created_ms=<ms>\n". ubsmd creates one when a pid that dies or drops its link
 * (finalize) was the ONLY local user of a share; while it is pending, allocate, deallocate and map of that
 * name on that node return 6017 (A.3, B.1 step 2, B.4); its handler detaches the share from the node and
 * never deletes it. The double has no daemon process: whichever call sweeps after the delay runs the
 * handler. The delay is evaluated by the sweeping process: control key reap_delay_ms when present, else
 * UBSM_DOUBLE_REAP_DELAY_MS, else 0 (handled by the same sweep that creates the record). */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* shared by every process (and container) on the machine */
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long reap_delay_ms(void) {
    char *t = ctl_read();
    size_t vl;
    const char *v = t ? ctl_find(t, "reap_delay_ms", &vl) : NULL;
    long long ms = v ? strtoll(v, NULL, 10) : strtoll(env_or("UBSM_DOUBLE_REAP_DELAY_MS", "0"), NULL, 10);
    free(t);
    return ms > 0 ? ms : 0;
}

/* Is a delayed-removal record pending for name on node? (after sweep(): only records not yet due remain) */
static int reap_pending(const char *name, const char *node) {
    char p[PATH_MAX];
    struct stat st;
    spath(p, "reap/%s@%s", name, node);
    return stat(p, &st) == 0;
}

static int attached_on(const char *name, const char *node) {
    char p[PATH_MAX];
    struct stat st;
    spath(p, "attach/%s@%s", name, node);
    return stat(p, &st) == 0;
}

/* Is name attached on any node? UBSE answers a delete with ATTACH_USING (6024) while it is (B.3). */
static int attached_anywhere(const char *name) {
    char p[PATH_MAX], pre[MAX_SHM_NAME_LENGTH + 2];
    spath(p, "attach");
    snprintf(pre, sizeof pre, "%s@", name);
    DIR *d = opendir(p);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) found = strncmp(e->d_name, pre, strlen(pre)) == 0 && !strstr(e->d_name, ".tmp.");
    closedir(d);
    return found;
}

/* A user (mapping entry <state>/maps/<name>@<node>@<id>) died or dropped its link: ubsmd treats both alike
 * (B.4 "link drop is treated as exit"). Other local users remain -> it just leaves the user set; it was the
 * only one -> a delayed-removal record, not a detach (the record's handler detaches; see reap_run). */
static void user_gone(const char *entry) {
    char p[PATH_MAX], name[MAX_SHM_NAME_LENGTH + 1], node[256];
    const char *at = strchr(entry, '@'), *at2 = at ? strchr(at + 1, '@') : NULL;
    spath(p, "maps/%s", entry);
    unlink(p);
    if (!at || !at2 || at - entry > MAX_SHM_NAME_LENGTH || at2 - at - 1 >= (long)sizeof node) return;
    snprintf(name, sizeof name, "%.*s", (int)(at - entry), entry);
    snprintf(node, sizeof node, "%.*s", (int)(at2 - at - 1), at + 1);
    if (has_map(name, node) || !attached_on(name, node) || reap_pending(name, node)) return;
    char t[64];
    snprintf(t, sizeof t, "created_ms=%lld\n", now_ms());
    spath(p, "reap/%s@%s", name, node);
    if (write_file(p, t) != 0) {
        fprintf(stderr, "ubsm-double: delayed-removal record %s: %s\n", p, strerror(errno));
        detach(name, node); /* do not leave the share attached with nobody to let go of it */
    }
}

/* Run the handler of every record that is due: detach the share from its node (never delete it, B.4). */
static void reap_run(void) {
    char p[PATH_MAX], f[PATH_MAX + 256];
    spath(p, "reap");
    DIR *d = opendir(p);
    if (!d) return;
    long long delay = -1, now = now_ms(); /* the delay is read once, and only when a record exists */
    struct dirent *e;
    while ((e = readdir(d))) {
        char *at = strchr(e->d_name, '@');
        if (e->d_name[0] == '.' || !at || strstr(e->d_name, ".tmp.") || at - e->d_name > MAX_SHM_NAME_LENGTH) continue;
        snprintf(f, sizeof f, "%s/%s", p, e->d_name);
        char *t = read_file(f);
        size_t vl;
        const char *v = t ? ctl_find(t, "created_ms", &vl) : NULL;
        long long created = v ? strtoll(v, NULL, 10) : 0;
        free(t);
        if (delay < 0) delay = reap_delay_ms();
        if (now - created < delay) continue;
        char name[MAX_SHM_NAME_LENGTH + 1];
        snprintf(name, sizeof name, "%.*s", (int)(at - e->d_name), e->d_name);
        detach(name, at + 1);
        unlink(f);
    }
    closedir(d);
}

/* Start of every call (the daemon's cleanup, done lazily): users whose process died (its flock is gone) leave
 * the user set, possibly creating records (user_gone); due records detach; then a share with no live local
 * user and no pending record is detached: that is the explicit unmap of the last user, which ubsmd detaches
 * at once (B.2 "When the last local user unmaps ... ubsmd detaches"). */
static void sweep(void) {
    char p[PATH_MAX], f[PATH_MAX + 256];
    struct dirent *e;
    spath(p, "maps");
    DIR *d = opendir(p);
    if (d) {
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            int fd = open(f, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            if (flock(fd, LOCK_EX | LOCK_NB) == 0) user_gone(e->d_name); /* nobody holds it: its process is gone */
            close(fd);
        }
        closedir(d);
    }
    reap_run();
    spath(p, "attach");
    d = opendir(p);
    if (!d) return;
    while ((e = readdir(d))) {
        char *at = strchr(e->d_name, '@');
        if (e->d_name[0] == '.' || !at || strstr(e->d_name, ".tmp.") || at - e->d_name > MAX_SHM_NAME_LENGTH) continue;
        char name[MAX_SHM_NAME_LENGTH + 1];
        snprintf(name, sizeof name, "%.*s", (int)(at - e->d_name), e->d_name);
        if (!has_map(name, at + 1) && !reap_pending(name, at + 1)) detach(name, at + 1);
    }
    closedir(d);
}

/* memids in use by any attachment (all nodes) plus the previous ones of this share on this node. */
static int used_ids(const char *name, uint64_t *out, int max) {
    int n = 0;
    char p[PATH_MAX];
    struct dirent *e;
    struct attach *a = malloc(sizeof *a);
    spath(p, "attach");
    DIR *d = opendir(p);
    while (a && d && (e = readdir(d))) {
        char *at = strchr(e->d_name, '@');
        if (!at || strstr(e->d_name, ".tmp.")) continue;
        char nm[MAX_SHM_NAME_LENGTH + 1];
        snprintf(nm, sizeof nm, "%.*s", (int)(at - e->d_name), e->d_name);
        if (attach_load(nm, at + 1, a) == 0)
            for (uint32_t i = 0; i < a->n && n < max; i++) out[n++] = a->ids[i];
    }
    if (d) closedir(d);
    free(a);
    spath(p, "prev/%s@%s", name, node_name());
    char *t = read_file(p);
    if (t) n += parse_ids(t, out + n, (uint32_t)(max - n));
    free(t);
    return n;
}

static int contains(const uint64_t *v, int n, uint64_t x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return 1;
    return 0;
}

/* Import on this node (what UBSE does on the first local map): pick memids, create and chown the nodes. */
static int attach_here(const char *name, const struct share *s) {
    uint32_t n = (uint32_t)(s->size / s->block);
    int maxu = 8 * MAX_MEMID_NUM;
    uint64_t *used = malloc(sizeof(uint64_t) * (size_t)(maxu + n));
    if (!used) return UBSM_ERR_MEMORY;
    int nu = used_ids(name, used, maxu);
    struct attach a;
    memset(&a, 0, sizeof a);
    my_mntns(a.mntns, sizeof a.mntns);
    snprintf(a.devdir, sizeof a.devdir, "%s", dev_dir());
    while (a.n < n) {
        uint32_t r;
        if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint32_t)rand();
        uint64_t id = 1 + r % MEMID_MAX;
        /* unique, never reused from the last attach, and never adjacent to its neighbour in the list */
        if (contains(used, nu, id) || (a.n && (id == a.ids[a.n - 1] + 1 || id + 1 == a.ids[a.n - 1]))) continue;
        a.ids[a.n++] = id;
        used[nu++] = id;
    }
    free(used);
    unsigned major = (unsigned)strtoul(env_or("UBSM_DOUBLE_MAJOR", "509"), NULL, 10);
    char p[PATH_MAX];
    for (uint32_t i = 0; i < a.n; i++) {
        dev_path(p, a.devdir, a.ids[i]);
        /* B.2: devtmpfs makes the node at the driver's cdev_device_add, root's and 0600 (no devnode mode
         * is known for obmm); UBSE then gives it the creator and the share's mode, below */
        if (mknod(p, S_IFCHR | 0600, makedev(major, (unsigned)a.ids[i])) != 0 && errno != EEXIST) {
            if (errno == EPERM) continue; /* see header: non-root attacher */
            fprintf(stderr, "ubsm-double: mknod %s: %s\n", p, strerror(errno));
            for (uint32_t j = 0; j < i; j++) {
                dev_path(p, a.devdir, a.ids[j]);
                unlink(p);
            }
            return UBSM_ERR_UBSE;
        }
        /* B.2: right after import UBSE chowns each node to the share creator's uid/gid and chmods it to the
         * share's mode (x bits dropped); a stale node at the path (EEXIST) gets the same */
        if (chown(p, s->uid, s->gid) != 0 || chmod(p, s->mode & 0666) != 0)
            fprintf(stderr, "ubsm-double: chown/chmod %s: %s\n", p, strerror(errno));
    }
    size_t cap = 64 + PATH_MAX + 21 * (size_t)a.n;
    char *t = malloc(cap), *o = t;
    if (!t) return UBSM_ERR_MEMORY;
    o += sprintf(o, "mntns=%s\ndevdir=%s\nmemids=", a.mntns, a.devdir);
    for (uint32_t i = 0; i < a.n; i++) o += sprintf(o, "%llu ", (unsigned long long)a.ids[i]);
    strcpy(o, "\n");
    spath(p, "attach/%s@%s", name, node_name());
    int rc = write_file(p, t);
    free(t);
    return rc == 0 ? UBSM_OK : UBSM_ERR_UBSE;
}

/* ---------- link ---------- */

static int link_ok(void) {
    if (g_link < 0) return 0;
    struct pollfd pf = {g_link, POLLRDHUP, 0};
    return !(poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR)));
}

static int env_int(const char *k, int lo, int hi, int dflt) {
    const char *v = getenv(k);
    if (!v || !*v) return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return (*end || n < lo || n > hi) ? dflt : (int)n;
}

/* Common entry for shm calls: injected delay/failure, then the link; on 0 returns with g_mu locked. */
static int enter(const char *op) {
    int f = prologue(op);
    if (f) return f;
    pthread_mutex_lock(&g_mu);
    if (!link_ok()) {
        pthread_mutex_unlock(&g_mu);
        return UBSM_ERR_NET;
    }
    return UBSM_OK;
}

/* ---------- API ---------- */

UBSM_API int ubsmem_init_attributes(ubsmem_options_t *o) {
    if (!o) return UBSM_ERR_PARAM_INVALID;
    memset(o, 0, sizeof *o);
    return UBSM_OK;
}

UBSM_API int ubsmem_set_logger_level(int level) {
    if (level < 0 || level > 4) return UBSM_ERR_PARAM_INVALID;
    g_log_level = level;
    return UBSM_OK;
}

UBSM_API int ubsmem_initialize(const ubsmem_options_t *opts) {
    int f = prologue("initialize");
    if (f) return f;
    if (!opts) return UBSM_ERR_PARAM_INVALID;
    pthread_mutex_lock(&g_mu); /* init is serialised, as in the SDK */
    int rc = UBSM_OK;
    if (g_link >= 0) goto out;
    ubsm_standin_numa();
    ubsm_standin_hcom();
    ubsm_standin_boundscheck();
    if (!g_obmm) {
        const char *lib = env_or("UBSM_DOUBLE_OBMM", "/usr/lib64/libobmm.so.1");
        g_obmm = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!g_obmm || !dlsym(g_obmm, "ubsm_standin_obmm")) {
            fprintf(stderr, "ubsm-double: cannot load obmm library: %s\n", dlerror());
            if (g_obmm) dlclose(g_obmm);
            g_obmm = NULL;
            rc = UBSM_ERR_MEMLIB;
            goto out;
        }
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int l = snprintf(sa.sun_path, sizeof sa.sun_path, "%s/MxmAgentIpcServer", env_or("UBSM_DOUBLE_DIR", "/run/matrix/memory"));
    if (l < 0 || (size_t)l >= sizeof sa.sun_path) {
        fprintf(stderr, "ubsm-double: socket path too long\n");
        rc = UBSM_ERR_MEMLIB;
        goto out;
    }
    int times = env_int("HCOM_CONNECTION_RETRY_TIMES", 1, 10, 5);
    int interval = env_int("HCOM_CONNECTION_RETRY_INTERVAL_SEC", 1, 60, 20);
    int err = 0;
    for (int n = 0; n < times; n++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            g_link = fd;
            break;
        }
        err = errno;
        if (fd >= 0) close(fd);
        unsigned s = n < 30 ? 1u << n : (unsigned)interval;
        sleep(s < (unsigned)interval ? s : (unsigned)interval);
    }
    if (g_link < 0) {
        fprintf(stderr, "ubsm-double: connect %s failed after %d attempts: %s\n", sa.sun_path, times, strerror(err));
        rc = UBSM_ERR_MEMLIB;
        goto out;
    }
    if (ensure_state_dirs() != 0) {
        fprintf(stderr, "ubsm-double: cannot create state dir under %s: %s\n", sa.sun_path, strerror(errno));
        close(g_link);
        g_link = -1;
        rc = UBSM_ERR_MEMLIB;
    }
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Drop one mapping of this process (state lock held by the caller). */
static void drop_mapping(struct mapping *m) {
    munmap(m->ptr, m->len);
    unlink(m->lockpath);
    close(m->lockfd);
}

/* finalize drops the IPC link, and ubsmd treats a dropped link exactly like the process's exit (A.3, B.4):
 * each mapping leaves the user set as a dead pid's would (user_gone), so a share this process was the only
 * local user of gets a delayed-removal record, not the immediate detach of an explicit unmap. */
UBSM_API int ubsmem_finalize(void) {
    prologue("finalize"); /* delay only; finalize always succeeds */
    pthread_mutex_lock(&g_mu);
    if (g_link >= 0 || g_maps) {
        int lk = state_lock();
        sweep(); /* deaths of others first, while this process still counts as a user */
        while (g_maps) {
            struct mapping *m = g_maps;
            g_maps = m->next;
            munmap(m->ptr, m->len);
            const char *base = strrchr(m->lockpath, '/');
            user_gone(base ? base + 1 : m->lockpath); /* unlinks the entry, like the sweep of a dead holder */
            close(m->lockfd);
            free(m);
        }
        sweep(); /* runs records that are already due (delay 0) */
        state_unlock(lk);
    }
    if (g_link >= 0) close(g_link);
    g_link = -1;
    pthread_mutex_unlock(&g_mu);
    return UBSM_OK;
}

static int flags_ok(uint64_t f) {
    if (f & ~ALLOWED_FLAGS) return 0;
    uint64_t rest;
    if (f & UBSM_FLAG_NONCACHE) rest = f & ~(UBSM_FLAG_NONCACHE | UBSM_FLAG_WR_DELAY_COMP | UBSM_FLAG_MEM_ANONYMOUS);
    else if (f & UBSM_FLAG_ONLY_IMPORT_NONCACHE)
        rest = f & ~(UBSM_FLAG_ONLY_IMPORT_NONCACHE | UBSM_FLAG_WR_DELAY_COMP | UBSM_FLAG_MEM_ANONYMOUS |
                     UBSM_FLAG_MMAP_HUGETLB_PMD);
    else rest = f & ~(UBSM_FLAG_WITH_LOCK | UBSM_FLAG_MEM_ANONYMOUS); /* with-lock or cacheable */
    return rest == 0;
}

UBSM_API int ubsmem_shmem_allocate(const char *region, const char *name, size_t size, mode_t mode, uint64_t flags) {
    int rc = enter("allocate");
    if (rc) return rc;
    size_t rl = region ? strnlen(region, MAX_REGION_NAME_DESC_LENGTH) : 0;
    size_t rounded = (size + 4095) & ~(size_t)4095;
    if (rl == 0 || rl >= MAX_REGION_NAME_DESC_LENGTH || !valid_name(name) || size == 0 || rounded < size ||
        rounded % FOUR_MIB || !flags_ok(flags)) {
        rc = UBSM_ERR_PARAM_INVALID;
        goto out;
    }
    char *t = ctl_read();
    unsigned long long block = ctl_num(t, "block_size", DEFAULT_BLOCK);
    unsigned long long capacity = ctl_num(t, "capacity", DEFAULT_CAPACITY);
    free(t);
    if (block == 0 || block % 4096) block = DEFAULT_BLOCK;
    struct share s = {.req = size, .block = block, .flags = flags, .mode = mode & 07777,
                      .uid = geteuid(), .gid = getegid()};
    s.size = (size_t)((rounded + block - 1) / block * block);
    if (s.size / block > MAX_MEMID_NUM) { /* would not fit mem_id_list */
        rc = UBSM_ERR_PARAM_INVALID;
        goto out;
    }
    if (strcmp(region, "default") != 0) { /* no region was ever created */
        rc = UBSM_ERR_NOT_FOUND;
        goto out;
    }
    int lk = state_lock();
    sweep();
    struct share o;
    char p[PATH_MAX];
    if (reap_pending(name, node_name())) { /* A.3: 6017 while a delayed-removal record is pending */
        rc = UBSM_ERR_BUSY;
        goto unlock;
    }
    if (share_load(name, &o) == 0) {
        rc = UBSM_ERR_ALREADY_EXIST;
        goto unlock;
    }
    unsigned long long total = s.size;
    spath(p, "shares");
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && !strstr(e->d_name, ".tmp.") && share_load(e->d_name, &o) == 0) total += o.size;
    if (d) closedir(d);
    if (total > capacity) {
        rc = UBSM_ERR_MALLOC_FAIL;
        goto unlock;
    }
    spath(p, "data/%s", name);
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0 || fchmod(fd, 0666) != 0 || ftruncate(fd, (off_t)s.size) != 0 || share_store(name, &s) != 0) {
        fprintf(stderr, "ubsm-double: cannot create %s: %s\n", p, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(p);
        rc = UBSM_ERR_UBSE;
        goto unlock;
    }
    close(fd);
unlock:
    state_unlock(lk);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

UBSM_API int ubsmem_shmem_deallocate(const char *name) {
    int rc = enter("deallocate");
    if (rc) return rc;
    if (!name || !*name || strnlen(name, MAX_SHM_NAME_LENGTH) >= MAX_SHM_NAME_LENGTH) {
        rc = UBSM_ERR_PARAM_INVALID;
        goto out;
    }
    int lk = state_lock();
    sweep();
    struct share s;
    char p[PATH_MAX];
    /* A.3 ShmDelete, in order: 6017 (pending record), 6011 (uid AND gid, no root bypass), 6024 (users here;
     * UBSE's ATTACH_USING while any node still has it attached, B.3), then UBSE's NOT_EXIST -> 6020 */
    if (reap_pending(name, node_name())) rc = UBSM_ERR_BUSY;
    else if (share_load(name, &s) != 0) rc = UBSM_ERR_NOT_FOUND;
    else if (geteuid() != s.uid || getegid() != s.gid) rc = UBSM_ERR_NOPERM;
    else if (has_map(name, NULL) || attached_anywhere(name)) rc = UBSM_ERR_IN_USING;
    else {
        spath(p, "data/%s", name);
        unlink(p);
        spath(p, "shares/%s", name);
        unlink(p);
        /* forget remembered memids of this name on every node */
        char dir[PATH_MAX], pre[MAX_SHM_NAME_LENGTH + 2], f[PATH_MAX + 256];
        spath(dir, "prev");
        snprintf(pre, sizeof pre, "%s@", name);
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (strncmp(e->d_name, pre, strlen(pre)) == 0) {
                snprintf(f, sizeof f, "%s/%s", dir, e->d_name);
                unlink(f);
            }
        if (d) closedir(d);
    }
    state_unlock(lk);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static struct mapping *find_mapping_by_name(const char *name) {
    for (struct mapping *m = g_maps; m; m = m->next)
        if (strcmp(m->name, name) == 0) return m;
    return NULL;
}

UBSM_API int ubsmem_shmem_map(void *addr, size_t length, int prot, int flags, const char *name, off_t offset,
                              void **local_ptr) {
    int rc = enter("map");
    if (rc) return rc;
    int lk = -1, attached_now = 0, lockfd = -1;
    char lockpath[PATH_MAX] = "";
    struct mapping *m = NULL;
    if (!local_ptr || !name || !*name || strnlen(name, MAX_SHM_NAME_LENGTH) >= MAX_SHM_NAME_LENGTH || offset != 0 ||
        (prot & ~(PROT_READ | PROT_WRITE)) || (flags & MAP_TYPE) != MAP_SHARED ||
        ((uintptr_t)addr & 4095) || find_mapping_by_name(name)) {
        rc = UBSM_ERR_PARAM_INVALID;
        goto out;
    }
    lk = state_lock();
    sweep();
    struct share s;
    if (reap_pending(name, node_name())) { /* B.1 step 2: the delayed-removal state is checked first */
        rc = UBSM_ERR_BUSY;
        goto out;
    }
    if (share_load(name, &s) != 0) {
        rc = UBSM_ERR_NOT_FOUND;
        goto out;
    }
    /* A.5: the bits the share's mode grants the caller: owner bits if its euid is the owner's, else group bits
     * if its primary (effective) gid is the owner's, else other bits; x ignored. prot must be covered. */
    unsigned bits = geteuid() == s.uid ? (s.mode >> 6) & 7 : getegid() == s.gid ? (s.mode >> 3) & 7 : s.mode & 7;
    if (((prot & PROT_READ) && !(bits & 4)) || ((prot & PROT_WRITE) && !(bits & 2))) {
        rc = UBSM_ERR_NOPERM;
        goto out;
    }
    if (length != s.size) {
        rc = UBSM_ERR_PARAM_INVALID;
        goto out;
    }
    struct attach *a = malloc(sizeof *a);
    if (!a) {
        rc = UBSM_ERR_MEMORY;
        goto out;
    }
    if (attach_load(name, node_name(), a) != 0) {
        if ((rc = attach_here(name, &s)) != 0 || attach_load(name, node_name(), a) != 0) {
            free(a);
            rc = rc ? rc : UBSM_ERR_UBSE;
            goto out;
        }
        attached_now = 1;
    }
    /* the SDK opens each device in the caller's own mount namespace; no driver behind the major -> ENXIO.
     * A.5: the open mode comes from the GRANTED bits, not from prot: O_RDWR whenever the mode grants w, even
     * for a read-only map, so a non-root caller granted rw (0666) cannot map through a 0444 node (EACCES -> 6051). */
    int oflag = (bits & 2) ? O_RDWR : O_RDONLY;
    char p[PATH_MAX];
    for (uint32_t i = 0; i < a->n; i++) {
        dev_path(p, dev_dir(), a->ids[i]);
        int fd = open(p, oflag | O_CLOEXEC);
        if (fd >= 0) close(fd);
        else if (errno != ENXIO) {
            fprintf(stderr, "ubsm-double: obmm open %s failed: %s\n", p, strerror(errno));
            rc = UBSM_ERR_OBMM;
            break;
        }
    }
    free(a);
    if (rc) goto out;
    spath(lockpath, "maps/%s@%s@%d.%u.%ld", name, node_name(), (int)getpid(), ++g_seq, (long)time(NULL));
    lockfd = open(lockpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (lockfd < 0 || fchmod(lockfd, 0666) != 0 || flock(lockfd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "ubsm-double: map record %s: %s\n", lockpath, strerror(errno));
        rc = UBSM_ERR_UBSE;
        goto out;
    }
    spath(p, "data/%s", name);
    int dfd = open(p, ((prot & PROT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    void *ptr = dfd < 0 ? MAP_FAILED : mmap(addr, length, prot, MAP_SHARED, dfd, 0);
    if (dfd >= 0) close(dfd);
    m = calloc(1, sizeof *m);
    if (ptr == MAP_FAILED || !m) {
        fprintf(stderr, "ubsm-double: mmap %s: %s\n", p, strerror(errno));
        if (ptr != MAP_FAILED) munmap(ptr, length);
        rc = UBSM_ERR_PARAM_INVALID; /* a VA mmap failure is 6010 in the SDK */
        goto out;
    }
    snprintf(m->name, sizeof m->name, "%s", name);
    m->ptr = ptr;
    m->len = length;
    m->lockfd = lockfd;
    snprintf(m->lockpath, sizeof m->lockpath, "%s", lockpath);
    m->next = g_maps;
    g_maps = m;
    *local_ptr = ptr;
    m = NULL;
    lockfd = -1;
out:
    free(m);
    if (rc && lockfd >= 0) {
        unlink(lockpath);
        close(lockfd);
    } else if (rc && *lockpath) unlink(lockpath);
    if (rc && attached_now) detach(name, node_name());
    if (lk >= 0) state_unlock(lk);
    pthread_mutex_unlock(&g_mu);
    return rc;
}

UBSM_API int ubsmem_shmem_unmap(void *local_ptr, size_t length) {
    int rc = enter("unmap");
    if (rc) return rc;
    struct mapping **pp = &g_maps;
    while (*pp && !((*pp)->ptr == local_ptr && (*pp)->len == length)) pp = &(*pp)->next;
    if (!local_ptr || !*pp) {
        rc = UBSM_ERR_PARAM_INVALID;
    } else {
        struct mapping *m = *pp;
        *pp = m->next;
        int lk = state_lock();
        sweep();           /* deaths of others first, while this mapping still counts as a user */
        drop_mapping(m);   /* explicit unmap: no record (B.2) */
        sweep();           /* detaches at once when that was the node's last mapping */
        state_unlock(lk);
        free(m);
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

UBSM_API int ubsmem_shmem_lookup(const char *name, ubsmem_shmem_info_t *info) {
    int rc = enter("lookup");
    if (rc) return rc;
    size_t nl = name ? strnlen(name, MAX_SHM_NAME_LENGTH + 1) : 0;
    if (!info || nl == 0 || nl > MAX_SHM_NAME_LENGTH) {
        rc = UBSM_ERR_PARAM_INVALID;
        goto out;
    }
    int lk = state_lock();
    sweep();
    struct share s;
    struct attach *a = malloc(sizeof *a);
    if (!a) rc = UBSM_ERR_MEMORY;
    else if (share_load(name, &s) != 0 || attach_load(name, node_name(), a) != 0) rc = UBSM_ERR_NOT_FOUND;
    else {
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%s", name);
        info->size = s.size;
        info->mem_unit_size = s.block;
        info->mem_num = a->n;
        memcpy(info->mem_id_list, a->ids, sizeof(uint64_t) * a->n);
    }
    free(a);
    state_unlock(lk);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

UBSM_API int ubsmem_shmem_list_lookup(const char *prefix, ubsmem_shmem_desc_t *list, uint32_t *cnt) {
    int rc = enter("list_lookup");
    if (rc) return rc;
    size_t pl = prefix ? strnlen(prefix, MAX_SHM_NAME_LENGTH + 1) : 0;
    if (!cnt || pl == 0 || pl > MAX_SHM_NAME_LENGTH) {
        rc = UBSM_ERR_PARAM_INVALID;
        goto out;
    }
    int lk = state_lock();
    sweep();
    char p[PATH_MAX];
    spath(p, "shares");
    DIR *d = opendir(p);
    struct dirent *e;
    char **names = NULL;
    size_t total = 0, nm = 0, cap = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp.")) continue;
        total++;
        if (strncmp(e->d_name, prefix, pl) != 0) continue;
        if (nm == cap) names = realloc(names, sizeof *names * (cap = cap ? cap * 2 : 16));
        if (names) names[nm++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    if (total == 0) rc = UBSM_ERR_NOT_FOUND;
    else if (nm > *cnt) {
        *cnt = (uint32_t)nm;
        rc = UBSM_ERR_PARAM_INVALID;
    } else if (nm && !list) rc = UBSM_ERR_PARAM_INVALID;
    else {
        if (nm) qsort(names, nm, sizeof *names, cmp_str);
        uint32_t out = 0;
        for (size_t i = 0; i < nm; i++) {
            struct share s;
            if (share_load(names[i], &s) != 0) continue;
            memset(&list[out], 0, sizeof list[out]);
            snprintf(list[out].name, sizeof list[out].name, "%s", names[i]);
            list[out++].size = s.size;
        }
        *cnt = out;
    }
    for (size_t i = 0; i < nm; i++) free(names[i]);
    free(names);
    state_unlock(lk);
out:
    pthread_mutex_unlock(&g_mu);
    return rc;
}

UBSM_API int ubsmem_local_nid_query(uint32_t *nid) {
    int rc = enter("local_nid_query");
    if (rc) return rc;
    if (!nid) rc = UBSM_ERR_PARAM_INVALID;
    else {
        /* fixed per node name (FNV-1a), so two simulated nodes differ */
        uint32_t h = 2166136261u;
        for (const char *c = node_name(); *c; c++) h = (h ^ (uint8_t)*c) * 16777619u;
        *nid = h & 0xffff;
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}
