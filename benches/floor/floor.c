/*
 * floor: the physical floor of an SSE fan-out on this machine, to compare servers against.
 *
 * A minimal fan-out server, single-threaded, io_uring (liburing), registered files:
 *   - accepts (multishot accept) on 127.0.0.1:PORT;
 *   - a request whose line starts with "GET " is a subscriber: it gets a fixed SSE response
 *     head and from then on every published frame;
 *   - a request whose line starts with "POST " is a publish: its body (Content-Length bytes,
 *     one line of JSON) becomes the frame "id: N-0\nevent: bench\ndata: <body>\n\n", written
 *     once into one buffer and sent to every subscriber socket (one send per subscriber,
 *     batched into as few io_uring_enter calls as the submission queue allows); then the
 *     publisher gets 200 {"success":true,"eventId":"N-0"} (keep-alive);
 *   - anything else gets 400 and is closed.
 * No parser beyond the request line and Content-Length, no history, no heartbeats. A socket has
 * at most one send in flight; frames that arrive meanwhile queue behind it, in order.
 * Subscriber hang-ups are seen by a poll (POLLRDHUP) per subscriber.
 *
 *   floor PORT            (built by benches/floor/build.sh; stop it with SIGTERM/SIGINT)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_POLL };
enum state { ST_FREE = 0, ST_REQUEST, ST_SUBSCRIBER, ST_CLOSING };

#define MAX_REQUEST (1 << 20)
#define SQ_ENTRIES 4096
#define CQ_ENTRIES 65536

/* A frame shared by every subscriber; freed when the last send of it completes. */
struct frame {
	int refs;
	int len;
	char data[];
};

/* Something to send: a shared frame, or bytes owned by the item. */
struct item {
	struct item *next;
	struct frame *frame;
	const char *p;
	int len;
	int owned; /* p was malloc'd */
};

struct conn {
	enum state state;
	int inflight; /* operations in flight on this socket */
	int sending;  /* a send is in flight */
	struct item *head, *tail;
	char *buf; /* request bytes (ST_REQUEST) */
	int used, cap;
	int sub_index; /* index in subs[] while a subscriber */
	int close_after_send;
};

static struct io_uring ring;
static struct conn *conns;
static int max_fds;
static int *subs;
static int nsubs;
static int listen_fd;
static unsigned long long next_id = 1;

static const char SSE_HEAD[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			       "Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n";
static const char BAD[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static uint64_t ud(enum op op, int fd) { return ((uint64_t)op << 32) | (uint32_t)fd; }

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&ring)))
		io_uring_submit(&ring);
	return sqe;
}

static void arm_recv(int fd)
{
	struct conn *c = &conns[fd];
	if (c->cap - c->used < 4096) {
		int cap = c->cap ? c->cap * 2 : 16384;
		if (cap > MAX_REQUEST) cap = MAX_REQUEST;
		char *b = realloc(c->buf, cap);
		if (!b || cap - c->used <= 0) { /* too large: give up on it */
			shutdown(fd, SHUT_RDWR);
			return;
		}
		c->buf = b;
		c->cap = cap;
	}
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_recv(sqe, fd, c->buf + c->used, c->cap - c->used, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud(OP_RECV, fd));
	c->inflight++;
}

static void arm_poll(int fd)
{
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_poll_add(sqe, fd, POLLRDHUP | POLLIN);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud(OP_POLL, fd));
	conns[fd].inflight++;
}

static void send_next(int fd)
{
	struct conn *c = &conns[fd];
	if (c->sending || !c->head || c->state == ST_CLOSING) return;
	struct io_uring_sqe *sqe = sqe_get();
	/* MSG_WAITALL: io_uring retries a short send itself, so one completion = all bytes. */
	io_uring_prep_send(sqe, fd, c->head->p, c->head->len, MSG_NOSIGNAL | MSG_WAITALL);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, ud(OP_SEND, fd));
	c->sending = 1;
	c->inflight++;
}

static void enqueue(int fd, struct frame *f, const char *p, int len, int owned)
{
	struct conn *c = &conns[fd];
	struct item *it = malloc(sizeof *it);
	if (!it) { if (owned) free((void *)p); return; }
	it->next = NULL;
	it->frame = f;
	it->p = p;
	it->len = len;
	it->owned = owned;
	if (f) f->refs++;
	if (c->tail) c->tail->next = it; else c->head = it;
	c->tail = it;
	send_next(fd);
}

static void item_free(struct item *it)
{
	if (it->frame && --it->frame->refs == 0) free(it->frame);
	if (it->owned) free((void *)it->p);
	free(it);
}

static void sub_remove(int fd)
{
	struct conn *c = &conns[fd];
	if (c->sub_index < 0) return;
	int last = subs[--nsubs];
	subs[c->sub_index] = last;
	conns[last].sub_index = c->sub_index;
	c->sub_index = -1;
}

/* Start closing: no new operations; the fd is closed when the last one completes. */
static void close_conn(int fd)
{
	struct conn *c = &conns[fd];
	if (c->state == ST_CLOSING || c->state == ST_FREE) return;
	sub_remove(fd);
	c->state = ST_CLOSING;
	shutdown(fd, SHUT_RDWR); /* completes the pending recv/poll/send */
}

static void maybe_release(int fd)
{
	struct conn *c = &conns[fd];
	if (c->state != ST_CLOSING || c->inflight > 0) return;
	while (c->head) {
		struct item *it = c->head;
		c->head = it->next;
		item_free(it);
	}
	c->tail = NULL;
	free(c->buf);
	int minus_one = -1;
	io_uring_register_files_update(&ring, fd, &minus_one, 1);
	close(fd);
	memset(c, 0, sizeof *c);
	c->sub_index = -1;
}

static void publish(const char *body, int len, int publisher)
{
	unsigned long long id = next_id++;
	struct frame *f = malloc(sizeof *f + len + 64);
	if (!f) { close_conn(publisher); return; }
	f->refs = 1; /* held until every send is queued */
	f->len = snprintf(f->data, 64, "id: %llu-0\nevent: bench\ndata: ", id);
	memcpy(f->data + f->len, body, len);
	f->len += len;
	memcpy(f->data + f->len, "\n\n", 2);
	f->len += 2;
	for (int i = 0; i < nsubs; i++)
		enqueue(subs[i], f, f->data, f->len, 0);
	if (--f->refs == 0) free(f);
	char *answer = malloc(160);
	if (!answer) { close_conn(publisher); return; }
	char json[64];
	int jl = snprintf(json, sizeof json, "{\"success\":true,\"eventId\":\"%llu-0\"}", id);
	int al = snprintf(answer, 160,
			  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", jl,
			  json);
	enqueue(publisher, NULL, answer, al, 1);
}

/* Handle the requests in a connection's buffer; returns 1 if it should read more. */
static int handle_request(int fd)
{
	struct conn *c = &conns[fd];
	for (;;) {
		char *end = memmem(c->buf, c->used, "\r\n\r\n", 4);
		if (!end) return 1;
		int head_len = (int)(end - c->buf) + 4;
		if (c->used >= 4 && memcmp(c->buf, "GET ", 4) == 0) {
			c->state = ST_SUBSCRIBER;
			free(c->buf);
			c->buf = NULL;
			c->used = c->cap = 0;
			c->sub_index = nsubs;
			subs[nsubs++] = fd;
			enqueue(fd, NULL, SSE_HEAD, sizeof SSE_HEAD - 1, 0);
			arm_poll(fd);
			return 0;
		}
		if (c->used >= 5 && memcmp(c->buf, "POST ", 5) == 0) {
			long clen = -1;
			for (char *p = c->buf; p < end; p++) {
				if ((p == c->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
					clen = strtol(p + 15, NULL, 10);
					break;
				}
			}
			if (clen < 0 || clen > MAX_REQUEST - head_len) {
				enqueue(fd, NULL, BAD, sizeof BAD - 1, 0);
				c->close_after_send = 1;
				return 0;
			}
			if (c->used < head_len + clen) return 1;
			publish(c->buf + head_len, (int)clen, fd);
			int rest = c->used - head_len - (int)clen;
			memmove(c->buf, c->buf + head_len + clen, rest);
			c->used = rest;
			continue;
		}
		enqueue(fd, NULL, BAD, sizeof BAD - 1, 0);
		c->close_after_send = 1;
		return 0;
	}
}

static void arm_accept(void)
{
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, 0);
	io_uring_sqe_set_data64(sqe, ud(OP_ACCEPT, listen_fd));
}

static void on_accept(int res, unsigned flags)
{
	if (!(flags & IORING_CQE_F_MORE)) arm_accept();
	if (res < 0) {
		if (res == -EMFILE || res == -ENFILE) usleep(1000);
		return;
	}
	int fd = res;
	if (fd >= max_fds) { close(fd); return; }
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (io_uring_register_files_update(&ring, fd, &fd, 1) != 1) { close(fd); return; }
	struct conn *c = &conns[fd];
	memset(c, 0, sizeof *c);
	c->state = ST_REQUEST;
	c->sub_index = -1;
	arm_recv(fd);
}

static void on_cqe(struct io_uring_cqe *cqe)
{
	uint64_t d = io_uring_cqe_get_data64(cqe);
	int op = (int)(d >> 32), fd = (int)(uint32_t)d, res = cqe->res;
	if (op == OP_ACCEPT) { on_accept(res, cqe->flags); return; }
	struct conn *c = &conns[fd];
	c->inflight--;
	switch (op) {
	case OP_RECV:
		if (c->state != ST_REQUEST) break;
		if (res <= 0) { close_conn(fd); break; }
		c->used += res;
		if (handle_request(fd) && c->state == ST_REQUEST) arm_recv(fd);
		break;
	case OP_POLL: /* a subscriber hung up (or sent bytes, which no SSE client does) */
		close_conn(fd);
		break;
	case OP_SEND: {
		c->sending = 0;
		struct item *it = c->head;
		if (it) {
			c->head = it->next;
			if (!c->head) c->tail = NULL;
			int short_send = res != it->len;
			item_free(it);
			if (res < 0 || short_send) { close_conn(fd); break; }
		}
		if (c->close_after_send && !c->head) { close_conn(fd); break; }
		send_next(fd);
		break;
	}
	}
	maybe_release(fd);
}

int main(int argc, char **argv)
{
	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: floor PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		max_fds = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
	} else {
		max_fds = 1024;
	}
	conns = calloc(max_fds, sizeof *conns);
	subs = calloc(max_fds, sizeof *subs);
	if (!conns || !subs) { perror("calloc"); return 1; }
	for (int i = 0; i < max_fds; i++) conns[i].sub_index = -1;

	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) || listen(listen_fd, 4096)) {
		perror("listen");
		return 1;
	}
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = CQ_ENTRIES };
	int r = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
	if (r < 0) { fprintf(stderr, "io_uring: %s\n", strerror(-r)); return 1; }
	r = io_uring_register_files_sparse(&ring, max_fds);
	if (r < 0) { fprintf(stderr, "register files: %s\n", strerror(-r)); return 1; }
	arm_accept();
	printf("floor listening on 127.0.0.1:%s (pid %d)\n", argv[1], getpid());
	fflush(stdout);
	for (;;) {
		r = io_uring_submit_and_wait(&ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			fprintf(stderr, "io_uring_submit_and_wait: %s\n", strerror(-r));
			return 1;
		}
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			on_cqe(cqe);
			n++;
		}
		io_uring_cq_advance(&ring, n);
	}
}
