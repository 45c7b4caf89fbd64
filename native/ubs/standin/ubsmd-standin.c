/*
 * ubsmd-standin SOCKETPATH [GID]: stands in for ubsmd's listening socket (the SDK test double connects to it
 * at initialize and keeps the link open). Creates missing parent dirs (0750 root:GID, see mkdirs), binds the UNIX stream socket, chowns it root:GID (default 0) and chmods it 0660
 * (ubsmd's MIN_UDS_PERM), prints "ready <path>", then accepts and holds connections until SIGTERM/SIGINT,
 * when it removes the socket and exits 0. It speaks no protocol: peers only learn it is there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PEERS 1024

static volatile sig_atomic_t g_stop;
static void on_signal(int s) { (void)s; g_stop = 1; }

/* mkdir -p of p's parent; every dir it creates is 0750 root:gid (systemd makes /run/matrix 0750 for ubsmd,
 * ubsmd makes /run/matrix/memory 0750), so members of gid can reach the socket and nobody else can. */
static int mkdirs(char *p, gid_t gid) {
    char *slash = strrchr(p, '/');
    if (!slash || slash == p) return 0;
    *slash = 0;
    int rc = 0;
    struct stat st;
    if (stat(p, &st) != 0) {
        rc = mkdirs(p, gid);
        if (rc == 0 && mkdir(p, 0750) != 0 && errno != EEXIST) rc = -1;
        if (rc == 0 && (chown(p, 0, gid) != 0 || chmod(p, 0750) != 0)) rc = -1;
    }
    *slash = '/';
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: ubsmd-standin SOCKETPATH [GID]\n");
        return 2;
    }
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    if (strlen(argv[1]) >= sizeof path) {
        fprintf(stderr, "ubsmd-standin: socket path too long\n");
        return 2;
    }
    strcpy(path, argv[1]);
    gid_t gid = argc == 3 ? (gid_t)strtoul(argv[2], NULL, 10) : 0;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (mkdirs(path, gid) != 0) {
        perror("ubsmd-standin: mkdir");
        return 1;
    }
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, path);
    unlink(path); /* stale socket from an earlier run */
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 128) != 0) {
        perror("ubsmd-standin: bind/listen");
        return 1;
    }
    if (chown(path, 0, gid) != 0 || chmod(path, 0660) != 0) {
        perror("ubsmd-standin: chown/chmod");
        unlink(path);
        return 1;
    }
    printf("ready %s\n", path);
    fflush(stdout);

    static struct pollfd fds[MAX_PEERS + 1];
    int n = 1;
    fds[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    while (!g_stop) {
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            perror("ubsmd-standin: poll");
            break;
        }
        if ((fds[0].revents & POLLIN)) {
            int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0 && n <= MAX_PEERS) fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            else if (c >= 0) close(c);
        }
        for (int i = n - 1; i >= 1; i--) {
            if (!fds[i].revents) continue;
            char buf[256];
            ssize_t r = read(fds[i].fd, buf, sizeof buf); /* discard; EOF = the client went away */
            if (r <= 0) {
                close(fds[i].fd);
                fds[i] = fds[--n];
            }
        }
    }
    unlink(path);
    return 0;
}
