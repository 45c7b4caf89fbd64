/*
 * ubsm-consumer: a small SDK consumer that runs inside containers (linked dynamically against libubsm_sdk.so).
 *
 *   ubsm-consumer [--sdk-name NAME] CMD [REF] ARGS...
 *     write REF OFFSET TEXT     map rw, copy TEXT at OFFSET
 *     read REF OFFSET LEN       map ro, print LEN bytes as "text"
 *     info REF                  lookup: size, unit, memids (only while attached on this node)
 *     map-ro REF                map ro, then try to write through it: ok when the write faults
 *     hold REF SECONDS          map rw, print the result line, keep the mapping for SECONDS (or until SIGTERM)
 *     allocate NAME SIZE [MODE] allocate in region "default", flags 0, MODE octal (default 0660)
 *     deallocate NAME
 *
 * REF is a share as written in the pod annotation ("name" or "namespace/name", an optional ":ro"/":rw" is
 * ignored), resolved through MEMSHARE_UBS_SHARES="ref=sdkName[,ref=sdkName...]". With --sdk-name NAME the
 * REF argument is left out and NAME is the SDK name. Prints one JSON line {"ok":...,"code":N,...}.
 * Exit: 0 success, 1 SDK error (or a failed check), 2 usage.
 */
#define _GNU_SOURCE
#include "ubs_mem.h"

#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int usage(const char *why) {
    printf("{\"ok\":false,\"code\":0,\"error\":\"usage: %s\"}\n", why);
    return 2;
}

static int result(int code, const char *op, const char *extra) {
    printf("{\"ok\":%s,\"code\":%d,\"op\":\"%s\"%s%s}\n", code ? "false" : "true", code, op, extra ? "," : "",
           extra ? extra : "");
    fflush(stdout);
    return code ? 1 : 0;
}

/* Strip a trailing ":ro"/":rw" into out. */
static void bare_ref(const char *r, size_t n, char *out, size_t cap) {
    if (n >= 3 && (strncmp(r + n - 3, ":ro", 3) == 0 || strncmp(r + n - 3, ":rw", 3) == 0)) n -= 3;
    snprintf(out, cap, "%.*s", (int)n, r);
}

static int resolve(const char *ref, char *out, size_t cap) {
    const char *env = getenv("MEMSHARE_UBS_SHARES");
    char want[256], have[256];
    bare_ref(ref, strlen(ref), want, sizeof want);
    for (const char *p = env; p && *p;) {
        size_t len = strcspn(p, ",");
        const char *eq = memchr(p, '=', len);
        while (*p == ' ') p++, len--;
        if (eq) {
            bare_ref(p, (size_t)(eq - p), have, sizeof have);
            if (strcmp(have, want) == 0) {
                snprintf(out, cap, "%.*s", (int)(p + len - eq - 1), eq + 1);
                return 0;
            }
        }
        p += len + (p[len] == ',');
    }
    return -1;
}

static sigjmp_buf g_fault;
static void on_segv(int s) { (void)s; siglongjmp(g_fault, 1); }
static volatile sig_atomic_t g_term;
static void on_term(int s) { (void)s; g_term = 1; }

/* Real size: lookup answers only while attached on this node, so fall back to list_lookup. */
static int share_size(const char *name, size_t *size) {
    static ubsmem_shmem_info_t info;
    int rc = ubsmem_shmem_lookup(name, &info);
    if (rc == 0) {
        *size = info.size;
        return 0;
    }
    ubsmem_shmem_desc_t list[64];
    uint32_t cnt = 64;
    rc = ubsmem_shmem_list_lookup(name, list, &cnt);
    if (rc) return rc;
    for (uint32_t i = 0; i < cnt; i++)
        if (strcmp(list[i].name, name) == 0) {
            *size = list[i].size;
            return 0;
        }
    return UBSM_ERR_NOT_FOUND;
}

int main(int argc, char **argv) {
    const char *sdk = NULL;
    int a = 1;
    if (a + 1 < argc && strcmp(argv[a], "--sdk-name") == 0) {
        sdk = argv[a + 1];
        a += 2;
    }
    if (a >= argc) return usage("ubsm-consumer [--sdk-name NAME] write|read|info|map-ro|hold|allocate|deallocate ...");
    const char *cmd = argv[a++];
    int by_name = strcmp(cmd, "allocate") == 0 || strcmp(cmd, "deallocate") == 0;
    char name[256];
    if (by_name) {
        if (a >= argc) return usage("allocate NAME SIZE [MODE] | deallocate NAME");
        snprintf(name, sizeof name, "%s", argv[a++]);
    } else if (sdk) {
        snprintf(name, sizeof name, "%s", sdk);
    } else {
        if (a >= argc) return usage("missing REF");
        if (resolve(argv[a], name, sizeof name) != 0) {
            printf("{\"ok\":false,\"code\":0,\"error\":\"share %s is not in MEMSHARE_UBS_SHARES\"}\n", argv[a]);
            return 2;
        }
        a++;
    }
    int rest = argc - a;
    int need = !strcmp(cmd, "write") || !strcmp(cmd, "read") ? 2 : !strcmp(cmd, "hold") || !strcmp(cmd, "allocate") ? 1 : 0;
    if (rest < need || (!strcmp(cmd, "read") && rest != 2) ||
        (strcmp(cmd, "write") && strcmp(cmd, "read") && strcmp(cmd, "info") && strcmp(cmd, "map-ro") &&
         strcmp(cmd, "hold") && !by_name))
        return usage(cmd);

    ubsmem_options_t opts;
    ubsmem_init_attributes(&opts);
    int rc = ubsmem_initialize(&opts);
    if (rc) return result(rc, "initialize", NULL);
    char extra[512];

    if (!strcmp(cmd, "allocate")) {
        mode_t mode = rest >= 2 ? (mode_t)strtoul(argv[a + 1], NULL, 8) : 0660;
        rc = ubsmem_shmem_allocate("default", name, strtoull(argv[a], NULL, 0), mode, 0);
        ubsmem_finalize();
        return result(rc, cmd, NULL);
    }
    if (!strcmp(cmd, "deallocate")) {
        rc = ubsmem_shmem_deallocate(name);
        ubsmem_finalize();
        return result(rc, cmd, NULL);
    }
    if (!strcmp(cmd, "info")) {
        static ubsmem_shmem_info_t info;
        rc = ubsmem_shmem_lookup(name, &info);
        if (rc) return result(rc, cmd, NULL);
        char *ids = malloc(info.mem_num * 22 + 3), *o = ids;
        o += sprintf(o, "[");
        for (uint32_t i = 0; i < info.mem_num; i++) o += sprintf(o, "%s%llu", i ? "," : "", (unsigned long long)info.mem_id_list[i]);
        sprintf(o, "]");
        printf("{\"ok\":true,\"code\":0,\"op\":\"info\",\"name\":\"%s\",\"size\":%zu,\"unit\":%llu,\"memids\":%s}\n", name,
               info.size, (unsigned long long)info.mem_unit_size, ids);
        free(ids);
        ubsmem_finalize();
        return 0;
    }

    size_t size = 0;
    if ((rc = share_size(name, &size))) return result(rc, "lookup", NULL);
    int rw = !strcmp(cmd, "write") || !strcmp(cmd, "hold");
    void *p = NULL;
    rc = ubsmem_shmem_map(NULL, size, rw ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, name, 0, &p);
    if (rc) return result(rc, "map", NULL);
    char *mem = p;

    if (!strcmp(cmd, "write") || !strcmp(cmd, "read")) {
        size_t off = strtoull(argv[a], NULL, 0);
        const char *text = argv[a + 1];
        size_t len = !strcmp(cmd, "write") ? strlen(text) : strtoull(text, NULL, 0);
        if (off > size || len > size - off) {
            ubsmem_shmem_unmap(p, size);
            ubsmem_finalize();
            return result(UBSM_ERR_PARAM_INVALID, cmd, "\"error\":\"range outside the share\"");
        }
        if (!strcmp(cmd, "write")) {
            memcpy(mem + off, text, len);
            snprintf(extra, sizeof extra, "\"bytes\":%zu", len);
            rc = result(0, cmd, extra);
        } else {
            printf("{\"ok\":true,\"code\":0,\"op\":\"read\",\"text\":\"");
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)mem[off + i];
                if (c == '"' || c == '\\') printf("\\%c", c);
                else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
                else putchar(c);
            }
            printf("\"}\n");
            rc = 0;
        }
    } else if (!strcmp(cmd, "map-ro")) {
        struct sigaction sa = {.sa_handler = on_segv};
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        volatile int faulted = 0;
        if (sigsetjmp(g_fault, 1) == 0) *(volatile char *)mem = *(volatile char *)mem;
        else faulted = 1;
        snprintf(extra, sizeof extra, "\"writeFaulted\":%s", faulted ? "true" : "false");
        printf("{\"ok\":%s,\"code\":0,\"op\":\"map-ro\",%s}\n", faulted ? "true" : "false", extra);
        rc = faulted ? 0 : 1;
    } else { /* hold */
        struct sigaction sa = {.sa_handler = on_term};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        snprintf(extra, sizeof extra, "\"name\":\"%s\",\"size\":%zu", name, size);
        result(0, cmd, extra);
        for (unsigned s = (unsigned)strtoul(argv[a], NULL, 10) * 10; s && !g_term; s--) usleep(100000);
        rc = 0;
    }
    ubsmem_shmem_unmap(p, size);
    ubsmem_finalize();
    return rc;
}
