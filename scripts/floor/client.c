/*
 * The least CPU any client spends moving a copy's bytes (issue 32's
 * accounts): sends a request file over one connection while reading the
 * answers, until they end with TERMINATOR; reads wake at SO_RCVLOWAT
 * (LOWAT bytes, 256 KiB by default, with a 2 ms settle, as Astaire's do)
 * and nothing is parsed but newlines counted. Prints its own CPU.
 *
 * Usage: client PORT REQUEST_FILE TERMINATOR
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static double seconds(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: client PORT REQUEST_FILE TERMINATOR\n");
        return 2;
    }
    const char *term = argv[3];
    size_t term_len = strlen(term);
    int file = open(argv[2], O_RDONLY);
    struct stat st;
    if (file < 0 || fstat(file, &st) != 0) {
        perror(argv[2]);
        return 1;
    }
    size_t size = st.st_size;
    char *req = mmap(NULL, size, PROT_READ, MAP_PRIVATE, file, 0);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (req == MAP_FAILED || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("client");
        return 1;
    }
    fcntl(s, F_SETFL, O_NONBLOCK);
    int lowat = getenv("LOWAT") ? atoi(getenv("LOWAT")) : 256 * 1024;
    setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
    size_t cap = 1 << 20, sent = 0, got = 0, lines = 0, calls = 0;
    char *buf = malloc(cap), tail[64] = {0};
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    for (;;) {
        struct pollfd p = {s, POLLIN | (sent < size ? POLLOUT : 0), 0};
        if (poll(&p, 1, 2) == 0)
            p.revents = POLLIN; /* settled: take what is there */
        calls++;
        if ((p.revents & POLLOUT) && sent < size) {
            size_t n = size - sent < cap ? size - sent : cap;
            ssize_t w = send(s, req + sent, n, 0);
            calls++;
            if (w > 0)
                sent += w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(s, buf, cap, 0);
            calls++;
            if (n == 0)
                break;
            if (n < 0)
                continue;
            got += n;
            for (char *q = buf, *e = buf + n; (q = memchr(q, '\n', e - q)); q++)
                lines++;
            if ((size_t)n >= term_len) {
                memcpy(tail, buf + n - term_len, term_len);
            } else {
                memmove(tail, tail + n, term_len - n);
                memcpy(tail + term_len - n, buf, n);
            }
            if (sent == size && memcmp(tail, term, term_len) == 0)
                break;
        }
    }
    getrusage(RUSAGE_SELF, &r1);
    printf("%.3f %.3f %zu %zu %zu %zu\n", seconds(r1.ru_utime) - seconds(r0.ru_utime),
           seconds(r1.ru_stime) - seconds(r0.ru_stime), sent, got, lines, calls);
    return 0;
}
