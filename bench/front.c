/*
 * The recorders' front (bench/recorder.py): the executable the daemon runs as `ifconfig` or
 * `sysctl`. It reads the wall clock first thing, puts it in $CARPD_BENCH_EXEC, and execs
 * `<its own path>.py` (the recording Python script) with the same arguments. So the
 * recorder's log holds the moment the daemon's exec reached a program, before the Python
 * interpreter of the simulated tool starts (which OpenBSD's C ifconfig does not pay). What
 * it adds itself, one execve of this small program, is measured by simcost.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	struct timespec ts;
	char stamp[64], self[4096], script[4200];
	ssize_t n;

	(void)argc;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(stamp, sizeof stamp, "%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
	if (setenv("CARPD_BENCH_EXEC", stamp, 1) != 0)
		return 127;
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n < 0) {
		perror("readlink /proc/self/exe");
		return 127;
	}
	self[n] = '\0';
	snprintf(script, sizeof script, "%s.py", self);
	argv[0] = script;
	execv(script, argv);
	perror(script);
	return 127;
}
