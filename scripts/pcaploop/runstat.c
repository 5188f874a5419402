/*
 * runstat OUT CMD [ARG...]: run CMD (fork, execvp), wait for it with
 * wait4(2) and write one line to OUT:
 *
 *   wall_ns user_us sys_us maxrss_kib
 *
 * the wall time from just before the fork to the end of the wait
 * (CLOCK_MONOTONIC, nanoseconds), CMD's user and system CPU time in
 * microseconds and its peak resident set in KiB, from the rusage of that
 * one child. /usr/bin/time rounds the times to 10 ms, too coarse for runs
 * of 40-500 ms. CMD's standard streams are runstat's own. The exit status
 * is CMD's (128+N when signal N ended it; 127 when it could not run).
 *
 *   cc -O2 -o runstat runstat.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long us(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000LL + tv.tv_usec;
}

int main(int argc, char **argv)
{
	struct rusage ru;
	long long t0, t1;
	int status;
	pid_t pid;
	FILE *out;

	if (argc < 3) {
		fprintf(stderr, "usage: runstat OUT CMD [ARG...]\n");
		return 2;
	}
	if ((out = fopen(argv[1], "w")) == NULL) {
		fprintf(stderr, "runstat: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	t0 = now_ns();
	if ((pid = fork()) < 0) {
		fprintf(stderr, "runstat: fork: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0) {
		fclose(out);
		execvp(argv[2], argv + 2);
		fprintf(stderr, "runstat: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "runstat: wait4: %s\n", strerror(errno));
			return 2;
		}
	}
	t1 = now_ns();
	fprintf(out, "%lld %lld %lld %ld\n", t1 - t0, us(ru.ru_utime), us(ru.ru_stime), ru.ru_maxrss);
	if (fclose(out) != 0) {
		fprintf(stderr, "runstat: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
